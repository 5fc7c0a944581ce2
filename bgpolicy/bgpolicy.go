// Package bgpolicy decides whether an upgrade started in the background (by
// the timer, not by a person) may download now, and makes such a job polite
// while it runs: idle I/O and CPU priority and a bandwidth cap.
//
// It exists because a laptop on a metered phone tether or a nearly empty
// battery must not spend the user's money or charge on an upgrade nobody
// asked for at that moment. Each refusal is an error wrapping
// errdefs.ErrPolicy with a reason a person can act on; a job that is refused
// is reported, never silently skipped. An interactive Upgrade (or force)
// bypasses the checks. Missing services (no NetworkManager, no UPower, as on
// a build machine or a desktop) impose nothing.
package bgpolicy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/errdefs"
)

// D-Bus names of the services consulted.
const (
	NMName        = "org.freedesktop.NetworkManager"
	NMPath        = dbus.ObjectPath("/org/freedesktop/NetworkManager")
	NMInterface   = "org.freedesktop.NetworkManager"
	UPowerName    = "org.freedesktop.UPower"
	UPowerDisplay = dbus.ObjectPath("/org/freedesktop/UPower/devices/DisplayDevice")
	UPowerDevice  = "org.freedesktop.UPower.Device"
)

// NetworkManager's NMMetered values.
const (
	meteredYes      = 1
	meteredGuessYes = 3
)

// UPower's UpDeviceState values that mean "running on battery".
const (
	stateDischarging      = 2
	stateEmpty            = 3
	statePendingDischarge = 6
)

// Policy is the background policy of upgraded.conf.
type Policy struct {
	Conn         *dbus.Conn // system bus; nil: no checks possible, nothing refused
	AllowMetered bool       // allow_metered
	MinBattery   int        // min_battery, percent; 0 = ignore the battery
	MaxRate      int64      // background_rate, bytes/s for fetch.Options.MaxRate
	Logf         func(string, ...any)
}

// callTimeout bounds one property read; both services answer at once.
const callTimeout = 5 * time.Second

// Check returns nil when a background download may start now, or an error
// wrapping errdefs.ErrPolicy that says why not.
func (p Policy) Check(ctx context.Context) error {
	if p.Conn == nil {
		return nil
	}
	var errs []error
	if !p.AllowMetered {
		if m, err := p.metered(ctx); err != nil {
			p.logf("background policy: cannot read NetworkManager's Metered property (%v); not treating the connection as metered", err)
		} else if m == meteredYes || m == meteredGuessYes {
			how := "metered"
			if m == meteredGuessYes {
				how = "probably metered (NetworkManager guesses so)"
			}
			errs = append(errs, fmt.Errorf("the network connection is %s; background downloads wait for an unmetered one (allow_metered = true, or upgrade now by hand)", how))
		}
	}
	if p.MinBattery > 0 {
		pct, onBattery, present, err := p.battery(ctx)
		switch {
		case err != nil:
			p.logf("background policy: cannot read UPower's display device (%v); ignoring the battery", err)
		case present && onBattery && pct < float64(p.MinBattery):
			errs = append(errs, fmt.Errorf("the battery is at %.0f%% and discharging, below min_battery %d%%; background upgrades wait for the charger or more charge", pct, p.MinBattery))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("background upgrade deferred: %w: %w", errors.Join(errs...), errdefs.ErrPolicy)
}

func (p Policy) logf(f string, a ...any) {
	if p.Logf != nil {
		p.Logf(f, a...)
	}
}

func (p Policy) get(ctx context.Context, name string, path dbus.ObjectPath, iface, prop string) (dbus.Variant, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var v dbus.Variant
	err := p.Conn.Object(name, path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, iface, prop).Store(&v)
	return v, err
}

// metered reads NetworkManager's global Metered property (an NMMetered).
func (p Policy) metered(ctx context.Context) (uint32, error) {
	v, err := p.get(ctx, NMName, NMPath, NMInterface, "Metered")
	if err != nil {
		return 0, err
	}
	m, ok := v.Value().(uint32)
	if !ok {
		return 0, fmt.Errorf("Metered has type %s, want u", v.Signature())
	}
	return m, nil
}

// battery reads UPower's display device: the composite battery the desktop
// shows.
func (p Policy) battery(ctx context.Context) (pct float64, onBattery, present bool, err error) {
	v, err := p.get(ctx, UPowerName, UPowerDisplay, UPowerDevice, "IsPresent")
	if err != nil {
		return 0, false, false, err
	}
	if present, _ = v.Value().(bool); !present {
		return 0, false, false, nil
	}
	if v, err = p.get(ctx, UPowerName, UPowerDisplay, UPowerDevice, "Percentage"); err != nil {
		return 0, false, true, err
	}
	pct, ok := v.Value().(float64)
	if !ok {
		return 0, false, true, fmt.Errorf("Percentage has type %s, want d", v.Signature())
	}
	if v, err = p.get(ctx, UPowerName, UPowerDisplay, UPowerDevice, "State"); err != nil {
		return 0, false, true, err
	}
	st, _ := v.Value().(uint32)
	onBattery = st == stateDischarging || st == stateEmpty || st == statePendingDischarge
	return pct, onBattery, true, nil
}
