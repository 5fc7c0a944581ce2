package bgpolicy_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/bgpolicy"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/fakesys"
	"laptop.org/upgrade/internal/lowprio"
	"laptop.org/upgrade/internal/testbus"
)

// TestCheck runs the policy against stand-ins for NetworkManager and UPower
// with their real names, paths, interfaces and property types.
func TestCheck(t *testing.T) {
	b := testbus.Start(t)
	nm := fakesys.StartNM(t, b, fakesys.MeteredNo)
	up := fakesys.StartUPower(t, b, true, 80, fakesys.StateDischarging)
	conn := b.Conn(t)
	for _, tc := range []struct {
		name         string
		metered      uint32
		pct          float64
		state        uint32
		allowMetered bool
		want         []string // substrings of the refusal; nil = allowed
	}{
		{name: "unmetered, full", metered: fakesys.MeteredNo, pct: 80, state: fakesys.StateDischarging},
		{name: "unknown metering", metered: fakesys.MeteredUnknown, pct: 80, state: fakesys.StateDischarging},
		{name: "guess no", metered: fakesys.MeteredGuessNo, pct: 80, state: fakesys.StateDischarging},
		{name: "metered", metered: fakesys.MeteredYes, pct: 80, state: fakesys.StateDischarging, want: []string{"connection is metered"}},
		{name: "guess yes", metered: fakesys.MeteredGuessYes, pct: 80, state: fakesys.StateDischarging, want: []string{"probably metered"}},
		{name: "metered allowed", metered: fakesys.MeteredYes, pct: 80, state: fakesys.StateDischarging, allowMetered: true},
		{name: "low battery", metered: fakesys.MeteredNo, pct: 12, state: fakesys.StateDischarging, want: []string{"battery is at 12%", "min_battery 30%"}},
		{name: "low battery charging", metered: fakesys.MeteredNo, pct: 12, state: fakesys.StateCharging},
		{name: "low battery pending discharge", metered: fakesys.MeteredNo, pct: 12, state: fakesys.StatePendingDischarge, want: []string{"battery"}},
		{name: "both", metered: fakesys.MeteredYes, pct: 5, state: fakesys.StateEmpty, want: []string{"metered", "battery is at 5%"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nm.SetMetered(tc.metered)
			up.Set(tc.pct, tc.state)
			err := bgpolicy.Policy{Conn: conn, AllowMetered: tc.allowMetered, MinBattery: 30, Logf: t.Logf}.Check(context.Background())
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrPolicy) {
				t.Fatalf("got %v, want a policy refusal", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestCheckWithoutServices: no NetworkManager, no UPower (a desktop, a
// build machine): nothing is refused.
func TestCheckWithoutServices(t *testing.T) {
	b := testbus.Start(t)
	if err := (bgpolicy.Policy{Conn: b.Conn(t), MinBattery: 30, Logf: t.Logf}).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := (bgpolicy.Policy{}).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// No battery at all (IsPresent false).
	fakesys.StartUPower(t, b, false, 0, fakesys.StateUnknown)
	if err := (bgpolicy.Policy{Conn: b.Conn(t), MinBattery: 30}).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The main goroutine keeps the main thread, as in the binaries: lowprio
// never renices the main thread, so a worker landing there would run at
// normal priority.
func init() { runtime.LockOSThread() }

// TestLower: while lowered, a worker that starts gets nice 19 and the idle
// I/O class, the calling thread keeps its priority; after restore workers
// get lowprio's ordinary background level again.
func TestLower(t *testing.T) {
	lowprio.Enable()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	nice0, io0, err := bgpolicy.ThreadPriority(tid)
	if err != nil {
		t.Fatal(err)
	}
	worker := func() (nice, io int) {
		var wg sync.WaitGroup
		wg.Go(func() {
			defer lowprio.Background()()
			var err error
			if nice, io, err = bgpolicy.ThreadPriority(unix.Gettid()); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		return nice, io
	}
	type prio struct{ Nice, IOClass int }
	restore, err := bgpolicy.Lower()
	if err != nil {
		t.Fatal(err)
	}
	var got []prio
	n, io := worker()
	got = append(got, prio{n, io})
	n, io, _ = bgpolicy.ThreadPriority(tid)
	got = append(got, prio{n, io})
	restore()
	n, io = worker()
	got = append(got, prio{n, io})
	want := []prio{
		{max(19, nice0), 3},           // a worker during the job: idle
		{nice0, io0},                  // the caller (a D-Bus thread) untouched
		{max(lowprio.Nice, nice0), 2}, // a worker after: best effort
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}
