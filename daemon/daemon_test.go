package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
)

// fakeSecurity keeps the boot pointer in memory. Activate can be held at
// its start (hold), as a slow security service verifying a slot would be,
// and then completes even if the caller gave up.
type fakeSecurity struct {
	mu       sync.Mutex
	ptr      bootptr.Pointer
	calls    []string
	hold     chan struct{} // nil: Activate answers at once
	entered  chan struct{} // closed when Activate starts
	enterOne sync.Once
	rbHold   chan struct{}  // nil: Rollback answers at once
	rbIn     chan struct{}  // receives when Rollback starts
	ptrHold  chan struct{}  // nil: Pointer answers at once
	ptrIn    chan struct{}  // receives when a held Pointer starts
	answer   layout.Version // what Activate says it activated (0: 2, the test repository's newest)
}

func newFakeSecurity() *fakeSecurity {
	return &fakeSecurity{ptr: bootptr.Pointer{Next: layout.SlotA, Good: layout.SlotA}, entered: make(chan struct{})}
}

func (f *fakeSecurity) log(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeSecurity) Activate(ctx context.Context, slot layout.Slot, tries int) (layout.Version, error) {
	f.log("Activate " + string(slot))
	f.enterOne.Do(func() { close(f.entered) })
	if f.hold != nil {
		// Like the real service across the bus, it finishes its work
		// whatever the caller's context does.
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ptr = f.ptr.WithTrial(slot, tries)
	if f.answer != 0 {
		return f.answer, nil
	}
	return 2, nil
}

func (f *fakeSecurity) Invalidate(ctx context.Context, slot layout.Slot) error {
	f.log("Invalidate " + string(slot))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ptr.Next == slot {
		f.ptr.Next, f.ptr.Trial, f.ptr.Tries = layout.SlotA, false, 0
	}
	return nil
}

func (f *fakeSecurity) Rollback(ctx context.Context) (layout.Slot, layout.Version, error) {
	f.log("Rollback")
	if f.rbHold != nil {
		f.rbIn <- struct{}{}
		<-f.rbHold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ptr.Next, f.ptr.Trial, f.ptr.Tries = layout.SlotA, false, 0
	return layout.SlotA, 1, nil
}

func (f *fakeSecurity) Pointer(ctx context.Context) (bootptr.Pointer, error) {
	f.mu.Lock()
	hold, in := f.ptrHold, f.ptrIn
	f.mu.Unlock()
	if hold != nil {
		in <- struct{}{}
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ptr, nil
}

func (f *fakeSecurity) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// end is one Finished callback.
type end struct {
	Job     uint32
	Success bool
	Name    string
	Message string
}

// fixture is a root at version 1 with version 2 on a local mirror.
type fixture struct {
	cfg  *engine.Config
	sec  *fakeSecurity
	mu   sync.Mutex
	ends []end
	logs []string
}

func newFixture(t *testing.T, rp *testrepo.Repo) *fixture {
	t.Helper()
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	return &fixture{cfg: cfg, sec: newFakeSecurity()}
}

// TestDaemon runs the daemon on real roots and a real repository
// (published once: under the race detector that takes seconds) with the
// security service faked, to reach states the real one passes too fast.
func TestDaemon(t *testing.T) {
	rp := testrepo.New(t, 2)
	t.Run("cancel during activation", func(t *testing.T) { testCancelDuringActivation(t, rp) })
	t.Run("status across restart", func(t *testing.T) { testStatusAcrossRestart(t, rp) })
	t.Run("busy while rolling back", func(t *testing.T) { testBusyWhileRollingBack(t, rp) })
	t.Run("status while the daemon waits", func(t *testing.T) { testStatusWhileWaiting(t, rp) })
	t.Run("quick failure after ready-to-reboot", func(t *testing.T) { testQuickFailureAfterReady(t, rp) })
	t.Run("check against a stalling mirror", func(t *testing.T) { testCheckStall(t, rp) })
	t.Run("reload during a job", func(t *testing.T) { testReloadDuringJob(t, rp) })
	t.Run("worker killed mid-job", func(t *testing.T) { testWorkerKilled(t, rp) })
	t.Run("activated another version", func(t *testing.T) { testActivatedOtherVersion(t, rp) })
}

// testReloadDuringJob: a reload (SIGHUP) while a job runs leaves the job
// its settings and applies to the next check; under the race detector it
// also shows that the settings are handed over safely.
func testReloadDuringJob(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	f.sec.hold = make(chan struct{})
	d := f.start(t)
	defer d.Close()
	if _, err := d.Upgrade(0, daemon.JobOpts{}); err != nil {
		t.Fatal(err)
	}
	<-f.sec.entered // the job is activating
	dead := settings(f.cfg)
	dead.Mirrors = []string{"http://[::1]:1/"}
	d.Reload(dead, 5)
	close(f.sec.hold)
	d.Wait()
	if ends := f.finished(); len(ends) != 1 || !ends[0].Success {
		t.Fatalf("the job after a reload: %+v, want success", ends)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := d.Check(ctx, 0); err == nil {
		t.Error("Check after reloading a dead mirror succeeded: the reload was not applied")
	}
}

// testQuickFailureAfterReady: a job that fails at once while an earlier
// build boots next leaves ready-to-reboot at 100 %, never "ready-to-reboot
// 0%" (the failed job's progress).
func testQuickFailureAfterReady(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	d := f.start(t)
	defer d.Close()
	if _, err := d.Upgrade(0, daemon.JobOpts{}); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	if _, err := d.Upgrade(9, daemon.JobOpts{}); err != nil { // not published: fails in checking
		t.Fatal(err)
	}
	d.Wait()
	st := d.Status()
	if ends := f.finished(); len(ends) != 2 || ends[1].Success {
		t.Fatalf("Finished = %+v, want the second job failed", ends)
	}
	if st.State != daemon.StateReadyToReboot || st.Progress != 100 {
		t.Errorf("after a failed job with version 2 pending: %s %d%%, want ready-to-reboot 100%%", st.State, st.Progress)
	}
}

// testCheckStall: a Check whose mirror never answers ends when its bound
// runs out, as a Network error (LastError too), not as Cancelled: nobody
// cancelled it.
func testCheckStall(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	stall := make(chan struct{})
	defer close(stall)
	f.cfg.Mirrors = []string{testrepo.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // headers, then silence
		case <-r.Context().Done():
		case <-stall:
		}
	}))}
	names := map[error]string{errdefs.ErrNetwork: "Network", errdefs.ErrCancelled: "Cancelled"}
	d, err := daemon.New(daemon.Config{Settings: settings(f.cfg), Worker: runner(), Security: f.sec, Logf: t.Logf, ErrorName: func(err error) string {
		for class, name := range names {
			if errors.Is(err, class) {
				return name
			}
		}
		return "Failed"
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, err = d.Check(ctx, 0)
	if !errors.Is(err, errdefs.ErrNetwork) || errors.Is(err, errdefs.ErrCancelled) {
		t.Errorf("Check against a stalling mirror: %v; want a Network error, not Cancelled", err)
	}
	if st := d.Status(); st.LastError != "Network" || !strings.Contains(st.LastErrorMessage, "no answer from "+f.cfg.Mirrors[0]) || strings.Contains(st.LastErrorMessage, "cancel") {
		t.Errorf("LastError = %q (%s), want Network naming the mirror, not a cancellation", st.LastError, st.LastErrorMessage)
	}
}

// testStatusWhileWaiting: Status (every D-Bus property read) answers at
// once while the daemon waits for another service, here the boot pointer
// read after a rollback, and then shows the new state.
func testStatusWhileWaiting(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	d := f.start(t)
	defer d.Close()
	hold := make(chan struct{})
	f.sec.mu.Lock()
	f.sec.ptrHold, f.sec.ptrIn = hold, make(chan struct{})
	f.sec.mu.Unlock()
	done := make(chan error)
	go func() {
		_, _, err := d.Rollback(context.Background())
		done <- err
	}()
	<-f.sec.ptrIn // the rollback re-reads the pointer
	got := make(chan daemon.State)
	go func() { got <- d.Status().State }()
	select {
	case st := <-got:
		if st != daemon.StateRollingBack {
			t.Errorf("State while the pointer is read = %q, want %q", st, daemon.StateRollingBack)
		}
	case <-time.After(5 * time.Second):
		close(hold) // let the rollback end, or Close would wait for ever
		<-done
		t.Fatal("Status waited for the daemon's lock")
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := d.Status().State; st != daemon.StateIdle {
		t.Errorf("State after the rollback = %q, want idle", st)
	}
}

// testBusyWhileRollingBack: while the security service verifies the other
// slot for a rollback, nothing may start writing into it.
func testBusyWhileRollingBack(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	f.sec.rbHold, f.sec.rbIn = make(chan struct{}), make(chan struct{})
	d := f.start(t)
	defer d.Close()
	done := make(chan error)
	go func() {
		_, _, err := d.Rollback(context.Background())
		done <- err
	}()
	<-f.sec.rbIn
	if st := d.Status().State; st != daemon.StateRollingBack {
		t.Errorf("State during a rollback = %q", st)
	}
	if _, err := d.Upgrade(0, daemon.JobOpts{}); !errors.Is(err, errdefs.ErrBusy) {
		t.Errorf("Upgrade during a rollback: %v, want busy", err)
	}
	if _, _, err := d.Check(context.Background(), 0); !errors.Is(err, errdefs.ErrBusy) {
		t.Errorf("Check during a rollback: %v, want busy", err)
	}
	close(f.sec.rbHold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := d.Status().State; st != daemon.StateIdle {
		t.Errorf("State after the rollback = %q, want idle", st)
	}
}

// errorName stands in for dbusapi.ErrorName (daemon must not import it).
func errorName(err error) string {
	switch {
	case errors.Is(err, errdefs.ErrCancelled):
		return "Cancelled"
	case errors.Is(err, errdefs.ErrWorkerCrashed):
		return "WorkerCrashed"
	}
	return "Failed"
}

func (f *fixture) start(t *testing.T) *daemon.Daemon {
	t.Helper()
	d, err := daemon.New(daemon.Config{
		Settings: settings(f.cfg), Worker: runner(), Security: f.sec, Tries: 3, ErrorName: errorName,
		Logf: func(format string, args ...any) {
			t.Logf(format, args...)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.logs = append(f.logs, fmt.Sprintf(format, args...))
		},
		Finished: func(job uint32, ok bool, name, msg string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.ends = append(f.ends, end{job, ok, name, msg})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *fixture) logged(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.logs, func(l string) bool { return strings.Contains(l, s) })
}

func (f *fixture) finished() []end {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]end(nil), f.ends...)
}

// testCancelDuringActivation: Cancel while the security service is
// activating the slot waits for its answer and then withdraws the slot, so
// a job reported Cancelled never leaves its slot booting next.
func testCancelDuringActivation(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	f.sec.hold = make(chan struct{})
	d := f.start(t)
	defer d.Close()
	job, err := d.Upgrade(0, daemon.JobOpts{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.sec.entered:
	case <-time.After(2 * time.Minute):
		t.Fatal("the job never asked for activation")
	}
	if st := d.Status().State; st != daemon.StateActivating {
		t.Errorf("State during activation = %q", st)
	}
	d.Cancel()
	close(f.sec.hold) // the service finishes and swings the pointer anyway
	d.Wait()

	got := f.finished()
	if len(got) != 1 || got[0].Job != job || got[0].Success || got[0].Name != "Cancelled" || !strings.Contains(got[0].Message, "does not boot next") {
		t.Errorf("Finished = %+v, want one Cancelled for job %d", got, job)
	}
	if diff := cmp.Diff([]string{"Invalidate b", "Activate b", "Invalidate b"}, f.sec.callLog()); diff != "" {
		t.Errorf("security calls (-want +got):\n%s", diff)
	}
	if p, _ := f.sec.Pointer(context.Background()); p.Next != layout.SlotA {
		t.Errorf("pointer after a cancelled activation: %+v", p)
	}
	st := d.Status()
	if st.State != daemon.StateIdle || st.NextBootSlot != "a" || st.LastError != "Cancelled" {
		t.Errorf("status after the cancel: state %q, next %q, last error %q", st.State, st.NextBootSlot, st.LastError)
	}
}

// testStatusAcrossRestart: the last job, its result and what boots next
// survive a restart; a rollback of the pending version returns the state
// to idle.
func testStatusAcrossRestart(t *testing.T, rp *testrepo.Repo) {
	f := newFixture(t, rp)
	d := f.start(t)
	job, err := d.Upgrade(0, daemon.JobOpts{})
	if err != nil {
		t.Fatal(err)
	}
	d.Wait()
	before := d.Status()
	d.Close()
	if before.State != daemon.StateReadyToReboot || before.Job != job || before.TargetVersion != "2" || before.Progress != 100 {
		t.Fatalf("status after the job: %+v", before)
	}

	d = f.start(t)
	defer d.Close()
	after := d.Status()
	before.BytesDone, before.BytesTotal = 0, 0 // a download's progress, not kept
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("status across a restart (-before +after):\n%s", diff)
	}
	if h := d.History(); len(h) != 1 || h[0].Job != job || !h[0].Success {
		t.Errorf("history after a restart: %+v", h)
	}

	if _, _, err := d.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := d.Status()
	if st.State != daemon.StateIdle || st.NextBootSlot != "a" {
		t.Errorf("after rolling back the pending version: state %q, next %q; want idle, a", st.State, st.NextBootSlot)
	}
	// Withdrawn, the built version 2 is again what an upgrade installs
	// (AvailableVersion's documented meaning), across a restart too.
	if st.AvailableVersion != "2" {
		t.Errorf("AvailableVersion after withdrawing version 2 = %q, want 2", st.AvailableVersion)
	}
}
