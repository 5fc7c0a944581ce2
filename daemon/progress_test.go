package daemon

import (
	"testing"

	"laptop.org/upgrade/report"
)

// TestProgressNeverGoesBack: a job's Progress only grows, through every
// phase of the engine and into activation (it went 100 -> 95 when the
// engine's part ended and activation began; e2e saw [61 83 92 100 95 100]),
// and even when the engine reports less after a retry. 100 is left for
// the job's end.
func TestProgressNeverGoesBack(t *testing.T) {
	d := &Daemon{cancel: func() {}}
	events := []report.Progress{
		{Phase: report.PhaseChecking},
		{Phase: report.PhaseCloning, ItemsDone: 5, ItemsTotal: 10},
		{Phase: report.PhaseDownloading, BytesDone: 50, BytesTotal: 100},
		{Phase: report.PhaseDownloading, BytesDone: 10, BytesTotal: 100}, // a retry after a lost link
		{Phase: report.PhaseDownloading, BytesDone: 100, BytesTotal: 100},
		{Phase: report.PhaseApplying, ItemsDone: 10, ItemsTotal: 10},
		{Phase: report.PhaseVerifying, ItemsDone: 10, ItemsTotal: 10},
		{Phase: report.PhaseDone, BytesDone: 100, BytesTotal: 100},
	}
	var seen []uint32
	for _, p := range events {
		d.progress(p)
		seen = append(seen, d.Status().Progress)
	}
	d.mu.Lock()
	d.setProgressLocked(StateActivating, activatingStart)
	d.mu.Unlock()
	st := d.Status()
	seen = append(seen, st.Progress)
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("progress went backwards: %v", seen)
		}
	}
	if st.State != StateActivating || st.Progress >= 100 {
		t.Errorf("activating at %d%% (%v); want below 100 until the job ends", st.Progress, seen)
	}
}
