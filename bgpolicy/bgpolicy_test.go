package bgpolicy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"laptop.org/upgrade/bgpolicy"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/fakesys"
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
