package e2e

import (
	"testing"
	"time"
)

// arrivals makes notifications received at the given offsets (ms).
func arrivals(ms ...int) []change {
	t0 := time.Unix(1_800_000_000, 0)
	cs := make([]change, len(ms))
	for i, m := range ms {
		cs[i] = change{at: t0.Add(time.Duration(m) * time.Millisecond)}
	}
	return cs
}

// every is n arrivals step ms apart, from start.
func every(start, step, n int) []int {
	var ms []int
	for i := range n {
		ms = append(ms, start+i*step)
	}
	return ms
}

// The pace judgement passes the daemon's 10/s, also as a late reader sees
// it (a gap, then the backlog at once), and fails a flood and a stall.
func TestJudgePace(t *testing.T) {
	lateReader := append(every(0, 100, 30), 3000+916) // 916 ms held up...
	lateReader = append(lateReader, every(3000+920, 5, 9)...)
	lateReader = append(lateReader, every(3000+1000, 100, 20)...)
	for _, tc := range []struct {
		name string
		ms   []int
		errs int
	}{
		{"10/s", every(0, 100, 120), 0},
		{"a late reader's burst after a gap", lateReader, 0},
		{"30/s", every(0, 33, 300), 1},
		{"20 at once without a gap before", append(every(0, 100, 30), every(3000, 5, 20)...), 1},
		{"a 2.5 s stall", append(every(0, 100, 30), every(5500, 100, 30)...), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			summary, errs := judgePace(arrivals(tc.ms...))
			if len(errs) != tc.errs {
				t.Errorf("%d errors %q, want %d (%s)", len(errs), errs, tc.errs, summary)
			}
		})
	}
}
