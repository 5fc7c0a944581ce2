package systemd_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/internal/fakesys"
	"laptop.org/upgrade/internal/testbus"
	"laptop.org/upgrade/systemd"
)

// TestInhibitor takes and drops a block lock from a stand-in logind and
// checks, from logind's side, that the descriptor is really closed.
func TestInhibitor(t *testing.T) {
	b := testbus.Start(t)
	ld := fakesys.StartLogind(t, b)
	inh := &systemd.Inhibitor{Conn: b.Conn(t)}
	ctx := context.Background()
	if err := inh.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := inh.Acquire(ctx); err != nil { // idempotent: no second lock
		t.Fatal(err)
	}
	want := []fakesys.Lock{{What: "shutdown:sleep", Who: "upgraded", Why: "writing the next system version", Mode: "block", Held: true}}
	if d := cmp.Diff(want, ld.Locks()); d != "" {
		t.Fatalf("locks (-want +got):\n%s", d)
	}
	if !inh.Held() {
		t.Fatal("not held")
	}
	inh.Release()
	inh.Release()
	want[0].Held = false
	// The stand-in sees the closed fd from its own side, asynchronously:
	// poll for it (bounded) rather than race it.
	var d string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if d = cmp.Diff(want, ld.Locks()); d == "" {
			break
		}
	}
	if d != "" {
		t.Fatalf("after release (-want +got):\n%s", d)
	}

	ld.Refuse(true)
	if err := inh.Acquire(ctx); err == nil || inh.Held() {
		t.Fatalf("refused lock: err %v, held %v", err, inh.Held())
	}
	var none *systemd.Inhibitor
	if err := none.Acquire(ctx); err != nil || none.Held() {
		t.Fatal("nil inhibitor must be a no-op")
	}
}

// TestInhibitorNoLogind: without logind on the bus Acquire fails cleanly.
func TestInhibitorNoLogind(t *testing.T) {
	b := testbus.Start(t)
	inh := &systemd.Inhibitor{Conn: b.Conn(t)}
	if err := inh.Acquire(context.Background()); err == nil {
		t.Fatal("no error without logind")
	}
}
