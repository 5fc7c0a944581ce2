package e2e

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
)

// waitBytes polls BytesDone/BytesTotal until more than frac of the
// download is done.
func waitBytes(e *env, frac float64) (done, total uint64) {
	t := e.t
	t.Helper()
	conn := e.conn()
	deadline := time.Now().Add(jobTimeout)
	for {
		m := props(t, conn)
		done, _ = m["BytesDone"].Value().(uint64)
		total, _ = m["BytesTotal"].Value().(uint64)
		if total > 0 && float64(done) > frac*float64(total) {
			return done, total
		}
		if time.Now().After(deadline) {
			t.Fatalf("download never passed %.0f %%: %d of %d bytes, state %v", frac*100, done, total, m["State"])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillDaemonMidDownload kills upgraded with SIGKILL when a third of
// the download is on disk, starts it again, and checks that it resumes the
// same job by itself, finishes it, sends Finished exactly once, marks the
// job resumed in History, and fetches less than an upgrade from scratch.
func TestKillDaemonMidDownload(t *testing.T) {
	rp := bigRepo(t)

	// What an uninterrupted upgrade of the same versions costs.
	ref := newEnv(t, rp, envOpts{})
	rw := ref.watch()
	if f := rw.waitFinished(ref.startUpgrade(ref.conn(), "", nil), jobTimeout); !f.Success {
		t.Fatalf("reference upgrade: %+v", f)
	}
	scratch := ref.srv.sent.Load()
	ref.stopAll()

	e := newEnv(t, rp, envOpts{})
	e.srv.setRate(busyRate / 2)
	w := e.watch()
	job := e.startUpgrade(e.conn(), "", nil)
	done, total := waitBytes(e, 0.3)
	e.upgraded.kill9(t)
	before := e.srv.sent.Load()
	e.srv.reset()
	e.srv.setRate(0)
	t.Logf("killed upgraded at %d of %d bytes (%d served so far)", done, total, before)

	e.startUpgraded()
	conn := e.conn()
	if got := prop(t, conn, "Job"); got != strconv.FormatUint(uint64(job), 10) {
		t.Errorf("after the restart Job = %s, want the cut-off job %d", got, job)
	}
	f := w.waitFinished(job, jobTimeout)
	if !f.Success {
		t.Fatalf("resumed job: %+v", f)
	}
	after := e.srv.sent.Load()
	// Finished is sent once: by the second daemon, never by the killed one.
	// History is read after Finished, so a duplicate would be there by now.
	hs := history(t, conn)
	n := 0
	for _, g := range w.allFinished() {
		if g.Job == job {
			n++
		}
	}
	if n != 1 {
		t.Errorf("Finished for job %d arrived %d times, want once", job, n)
	}
	if len(hs) != 1 || hs[0]["job"] != job || hs[0]["resumed"] != true || hs[0]["success"] != true {
		t.Errorf("History = %v, want one successful job %d marked resumed", hs, job)
	}
	t.Logf("bytes served: from scratch %d; killed run %d + resumed run %d = %d (resumed run %.0f %% of scratch)",
		scratch, before, after, before+after, 100*float64(after)/float64(scratch))
	// The bytes on disk before the kill (done) are not fetched again.
	if limit := scratch - int64(done)*9/10; after >= limit {
		t.Errorf("the resumed run fetched %d bytes; from scratch is %d and %d were on disk: want < %d", after, scratch, done, limit)
	}
	if p := e.pointer(); p.Next != layout.SlotB || !p.Trial {
		t.Errorf("pointer after the resumed job: %+v", p)
	}
}

// TestKillSecuritydDuringActivate kills securityd while it handles
// Activate: the daemon reports a clear error, the boot pointer stays on
// slot a, and once securityd runs again the next Upgrade only activates
// the slot that was built.
//
// To be inside Activate for sure, securityd is stopped (SIGSTOP) during
// the download, so the daemon's Activate call waits in its queue; when
// State says activating, it is killed.
func TestKillSecuritydDuringActivate(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	conn := e.conn()
	w := e.watch()
	e.srv.setRate(slowRate)
	job := e.startUpgrade(conn, "", nil)
	waitState(t, conn, jobTimeout, func(s string) bool { return s == "downloading" })
	if err := e.security.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e.srv.setRate(0)
	waitState(t, conn, jobTimeout, func(s string) bool { return s == "activating" })
	e.security.kill9(t)
	f := w.waitFinished(job, jobTimeout)
	if f.Success || !strings.Contains(f.Message, "security service") || !strings.Contains(f.Message, "did not activate") {
		t.Errorf("Finished = %+v, want a failure that names the security service", f)
	}
	if f.Name != dbusapi.ErrPrecondition {
		t.Errorf("Finished error %q, want %s", f.Name, dbusapi.ErrPrecondition)
	}
	t.Logf("Finished: %s: %s", f.Name, f.Message)
	if got := prop(t, conn, "LastError"); got != f.Name {
		t.Errorf("LastError = %q, want %q", got, f.Name)
	}
	if p := e.pointer(); p.Next != layout.SlotA || p.Trial {
		t.Errorf("the pointer moved although activation never completed: %+v", p)
	}

	e.startSecurityd()
	e.srv.reset()
	job2 := e.startUpgrade(conn, "", nil)
	if f := w.waitFinished(job2, jobTimeout); !f.Success {
		t.Fatalf("Upgrade after securityd came back: %+v", f)
	}
	if p := e.pointer(); p.Next != layout.SlotB || !p.Trial {
		t.Errorf("pointer after the second Upgrade: %+v", p)
	}
	if inst, err := engine.LoadInstalled(e.lr, layout.SlotB); err != nil || inst.Version != 2 {
		t.Errorf("slot b record: %+v %v", inst, err)
	}
	t.Logf("the second Upgrade fetched %d bytes (the index only: the slot was built)", e.srv.sent.Load())
}
