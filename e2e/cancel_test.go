package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
)

// phases in the order a job goes through them.
var phases = []string{"checking", "cloning", "downloading", "applying", "verifying", "activating"}

// atOrAfter is true for state s at or past phase p, or finished.
func atOrAfter(p string) func(string) bool {
	want := slices.Index(phases, p)
	return func(s string) bool {
		i := slices.Index(phases, s)
		return i >= want || i < 0 // idle, ready-to-reboot: over
	}
}

// TestCancelEachPhase cancels a job in each phase and checks that it ends
// in a defined state: Finished(job, false, Cancelled), the boot pointer
// still on slot a, slot b not recorded as installed (it may be half
// written, so it must never boot), and a following Upgrade succeeds.
//
// How each phase is reached: checking by holding the index request at the
// server; downloading by throttling the server; the others by polling
// State (Get answers the live state, not the throttled notifications) on
// the big repository, where each lasts 0.1 s to 0.7 s here. When polling
// only sees a phase after it ended, the test says so in its log and checks
// the cancel where it landed.
func TestCancelEachPhase(t *testing.T) {
	rp := bigRepo(t)
	for _, phase := range phases {
		t.Run(phase, func(t *testing.T) {
			e := newEnv(t, rp, envOpts{})
			conn := e.conn()
			w := e.watch()
			switch phase {
			case "checking":
				e.srv.holdRequests(isIndex)
			case "downloading":
				e.srv.setRate(busyRate / 4)
			}
			job := e.startUpgrade(conn, "", nil)
			st := waitState(t, conn, jobTimeout, atOrAfter(phase))
			if phase == "checking" {
				waitHeld(t, e.srv)
			}
			var err error
			if phase == "downloading" {
				// Through upgradectl once, as an administrator would.
				if r := e.ctl(0, "cancel"); r.code != 0 {
					t.Fatalf("upgradectl cancel:\n%s", r)
				}
			} else {
				err = upgradeObj(conn).Call(dbusapi.UpgradeInterface+".Cancel", 0).Err
			}
			if err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			e.srv.release()
			e.srv.setRate(0)
			f := w.waitFinished(job, jobTimeout)
			switch {
			case st != phase && f.Success:
				t.Logf("%s: too short to hit: polling saw %q first and the job finished before Cancel", phase, st)
			case st != phase:
				t.Logf("%s: too short to hit: cancelled in %q: %s", phase, st, f.Message)
			default:
				t.Logf("cancelled in %s: %s", phase, f.Message)
			}
			if !f.Success {
				e.assertCancelled(f, st)
			}
			// And the machine goes on: the next Upgrade succeeds.
			job2 := e.startUpgrade(conn, "", nil)
			if f2 := w.waitFinished(job2, jobTimeout); !f2.Success {
				t.Fatalf("Upgrade after the cancel: %+v", f2)
			}
			if p := e.pointer(); p.Next != layout.SlotB || !p.Trial {
				t.Errorf("pointer after the upgrade that followed the cancel: %+v", p)
			}
		})
	}
}

// waitHeld waits until the server holds a request (the job is really
// waiting for the network, not about to).
func waitHeld(t *testing.T, s *repoServer) {
	t.Helper()
	deadline := time.Now().Add(jobTimeout)
	for s.heldNow() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the job never asked for the index")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertCancelled checks the state a cancelled job leaves.
func (e *env) assertCancelled(f finished, landed string) {
	t := e.t
	t.Helper()
	if f.Name != dbusapi.ErrCancelled || !strings.Contains(f.Message, "cancelled") {
		t.Errorf("Finished = %+v, want %s", f, dbusapi.ErrCancelled)
	}
	if p := e.pointer(); p.Next != layout.SlotA || p.Trial || p.Good != layout.SlotA {
		t.Errorf("after a cancel the boot pointer is %+v, want a, not on trial", p)
	}
	conn := e.conn()
	if st := prop(t, conn, "State"); st != "idle" {
		t.Errorf("State after a cancel = %q, want idle", st)
	}
	if nb := prop(t, conn, "NextBootSlot"); nb != "a" {
		t.Errorf("NextBootSlot after a cancel = %q, want a", nb)
	}
	// Until activation, slot b is not recorded as installed: it may be half
	// written. A cancel during activation leaves it built and verified, but
	// not next.
	inst, err := engine.LoadInstalled(e.lr, layout.SlotB)
	if landed != "activating" && err == nil {
		t.Errorf("slot b is recorded as installed (version %d) after a cancel in %s", inst.Version, landed)
	}
}
