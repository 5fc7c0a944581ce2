package daemon_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/internal/testrepo"
)

// testWorkerKilled: a worker killed (SIGKILL) in the middle of its download
// ends the job with WorkerCrashed, and the next job resumes from the
// journal the dead worker left and completes.
func testWorkerKilled(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	m := &holdingMirror{fs: http.FileServer(http.Dir(rp.Dir)), seen: map[string]bool{}, held: make(chan struct{}, 1), release: make(chan struct{})}
	f.cfg.Mirrors = []string{testrepo.Serve(t, m)}
	d := f.start(t)
	defer d.Close()
	// A check reads what a job's checking phase reads; the mirror then
	// holds the first request for anything else: the download, which
	// runs beside the clone.
	if _, _, err := d.Check(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.learned = true
	m.mu.Unlock()
	if _, err := d.Upgrade(0, daemon.JobOpts{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.held:
	case <-time.After(2 * time.Minute):
		t.Fatal("the job never asked the mirror for a download")
	}
	// The clone is journaled before the engine reports downloading.
	for deadline := time.Now().Add(2 * time.Minute); d.Status().State != daemon.StateDownloading; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("state %q while the download is held, never downloading", d.Status().State)
		}
	}
	pids := workers(t)
	if len(pids) != 1 {
		t.Fatalf("worker processes: %v, want one", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	close(m.release)
	ends := f.finished()
	if len(ends) != 1 || ends[0].Success || ends[0].Name != "WorkerCrashed" || !strings.Contains(ends[0].Message, "killed") {
		t.Fatalf("Finished after the kill = %+v, want WorkerCrashed saying it was killed", ends)
	}
	if st := d.Status(); st.State != daemon.StateIdle || st.LastError != "WorkerCrashed" {
		t.Errorf("status after the crash: %q, last error %q", st.State, st.LastError)
	}

	if _, err := d.Upgrade(0, daemon.JobOpts{}); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	if ends := f.finished(); len(ends) != 2 || !ends[1].Success {
		t.Fatalf("the job after the crash: %+v, want success", ends)
	}
	if !f.logged("resumed true") {
		t.Error("the job after the crash did not resume the dead worker's journal")
	}
	if st := d.Status(); st.State != daemon.StateReadyToReboot || st.Progress != 100 {
		t.Errorf("after the resumed job: %s %d%%", st.State, st.Progress)
	}
}

// holdingMirror serves a repository; once it has learned the paths a check
// reads, it holds the first request for any other until release.
type holdingMirror struct {
	fs      http.Handler
	mu      sync.Mutex
	seen    map[string]bool
	learned bool
	held    chan struct{}
	release chan struct{}
}

func (m *holdingMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	if !m.learned {
		m.seen[r.URL.Path] = true
	}
	known := m.seen[r.URL.Path]
	m.mu.Unlock()
	if !known {
		select {
		case m.held <- struct{}{}:
		default:
		}
		select {
		case <-m.release:
		case <-r.Context().Done():
			return
		}
	}
	m.fs.ServeHTTP(w, r)
}

// workers lists this process's children that run this test binary.
func workers(t *testing.T) []int {
	t.Helper()
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		dir := filepath.Dir(p)
		if exe, _ := os.Readlink(filepath.Join(dir, "exe")); exe == self {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			out = append(out, pid)
		}
	}
	return out
}
