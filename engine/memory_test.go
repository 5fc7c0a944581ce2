package engine

import (
	"runtime/debug"
	"testing"
)

// gcPercent reads GOGC.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// Nested and overlapping tighten calls (two jobs' large deltas) keep GOGC
// low until the last is undone, then give back what it was; outside a
// job, tighten changes nothing.
func TestTighten(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if undo := tighten(); gcPercent() != 100 {
		t.Fatalf("no job running: GOGC %d", gcPercent())
	} else {
		undo()
	}
	done := limitMemory(10)
	defer done()
	var got []int
	a := tighten()
	got = append(got, gcPercent())
	b := tighten()
	got = append(got, gcPercent())
	a()
	got = append(got, gcPercent())
	b()
	got = append(got, gcPercent())
	want := []int{bigGCPercent, bigGCPercent, bigGCPercent, 100}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("GOGC along the calls %v, want %v", got, want)
		}
	}
}
