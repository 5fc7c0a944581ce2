package serve

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/report"
)

// lockedBuffer is the event pipe: the writer's timer writes from its own
// goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// done lists the bytes of every progress event written so far.
func (l *lockedBuffer) done(t *testing.T) []int64 {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int64
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var e worker.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Progress != nil {
			out = append(out, e.Progress.BytesDone)
		}
	}
	return out
}

// TestProgressHeldBackIsWritten: the last progress before a stall, held
// back by the throttle, reaches the daemon without a later event to carry
// it (a held download must show how far it got: the Sugar section waits
// for that). Before, it waited for the end of the job.
func TestProgressHeldBackIsWritten(t *testing.T) {
	var buf lockedBuffer
	w := &writer{enc: json.NewEncoder(&buf)}
	w.progress(report.Progress{Phase: report.PhaseDownloading, BytesDone: 1})
	w.progress(report.Progress{Phase: report.PhaseDownloading, BytesDone: 2})
	w.progress(report.Progress{Phase: report.PhaseDownloading, BytesDone: 3}) // then nothing more
	// On a busy machine the second may go out at once too; the last one
	// must go out in any case.
	last := func() int64 { d := buf.done(t); return d[len(d)-1] }
	deadline := time.Now().Add(time.Minute)
	for last() != 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := buf.done(t)
	if got[0] != 1 || last() != 3 {
		t.Fatalf("progress written: %v, want 1 first and 3 last", got)
	}
	w.flush()
	w.progress(report.Progress{Phase: report.PhaseDownloading, BytesDone: 4})
	w.writePending()
	if d := cmp.Diff(got, buf.done(t)); d != "" {
		t.Fatalf("progress after flush (-want +got):\n%s", d)
	}
}
