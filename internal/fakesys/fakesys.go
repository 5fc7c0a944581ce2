// Package fakesys runs small stand-ins for logind, NetworkManager and UPower
// on a private test bus (internal/testbus), with their real bus names,
// object paths, interfaces and property names. Those daemons do not run on
// build machines, yet the daemon's inhibitor and background policy must be
// tested against the exact D-Bus surface they will meet on a laptop.
//
// Only the members the project uses are implemented. Every service is
// stopped at test cleanup.
package fakesys

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/internal/testbus"
)

// AllowOwn lets root own names on b, as the packages' own policy files do
// on a real system, and makes the bus reload its configuration. The test
// bus's default policy (the system bus's) denies owning any name.
func AllowOwn(t testing.TB, b *testbus.Bus, names ...string) {
	t.Helper()
	var sb strings.Builder
	sb.WriteString(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">` + "\n<busconfig>\n <policy user=\"root\">\n")
	for _, n := range names {
		fmt.Fprintf(&sb, "  <allow own=%q/>\n", n)
	}
	sb.WriteString(" </policy>\n <policy context=\"default\">\n")
	for _, n := range names {
		fmt.Fprintf(&sb, "  <allow send_destination=%q/>\n", n)
	}
	sb.WriteString(" </policy>\n</busconfig>\n")
	f := filepath.Join(b.Dir, "system.d", "fakesys-"+strings.ReplaceAll(names[0], ".", "-")+".conf")
	if err := os.WriteFile(f, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conn := b.Conn(t)
	// ReloadConfig returns once the new policy is in force.
	if err := conn.BusObject().Call("org.freedesktop.DBus.ReloadConfig", 0).Err; err != nil {
		t.Fatalf("fakesys: reload bus config: %v", err)
	}
}

// own exports nothing itself; it claims name on conn.
func own(t testing.TB, conn *dbus.Conn, name string) {
	t.Helper()
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("fakesys: own %s: reply %v, %v", name, reply, err)
	}
}

// Logind stands in for systemd-logind's Manager.Inhibit. Like logind it
// returns the write end of a pipe and considers the lock held until every
// copy of that end is closed.
type Logind struct {
	mu      sync.Mutex
	locks   []*lock
	pending []int // our copies of fds handed out, closed once delivered
	fail    bool
}

type lock struct {
	What, Who, Why, Mode string
	r                    *os.File
}

// StartLogind owns org.freedesktop.login1 on b.
func StartLogind(t testing.TB, b *testbus.Bus) *Logind {
	t.Helper()
	AllowOwn(t, b, "org.freedesktop.login1")
	conn := b.Conn(t)
	l := &Logind{}
	if err := conn.Export(l, "/org/freedesktop/login1", "org.freedesktop.login1.Manager"); err != nil {
		t.Fatal(err)
	}
	own(t, conn, "org.freedesktop.login1")
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, fd := range l.pending {
			unix.Close(fd)
		}
		for _, k := range l.locks {
			k.r.Close()
		}
	})
	return l
}

// Inhibit is org.freedesktop.login1.Manager.Inhibit(ssss) → h.
func (l *Logind) Inhibit(what, who, why, mode string) (dbus.UnixFD, *dbus.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail {
		return -1, dbus.NewError("org.freedesktop.DBus.Error.AccessDenied", []any{"inhibitor refused by test"})
	}
	if mode != "block" && mode != "delay" {
		return -1, dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"invalid mode " + mode})
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return -1, dbus.MakeFailedError(err)
	}
	l.locks = append(l.locks, &lock{What: what, Who: who, Why: why, Mode: mode, r: os.NewFile(uintptr(p[0]), "inhibit-r")})
	// godbus sends the reply after this returns, so our copy of the
	// write end can only be closed later (see settle).
	l.pending = append(l.pending, p[1])
	return dbus.UnixFD(p[1]), nil
}

// Refuse makes the next calls fail (logind refusing, e.g. by polkit).
func (l *Logind) Refuse(v bool) {
	l.mu.Lock()
	l.fail = v
	l.mu.Unlock()
}

// settle closes our copies of handed-out fds. Only call it once the client
// has its reply (its Inhibit call returned), so the fd was delivered.
func (l *Logind) settleLocked() {
	for _, fd := range l.pending {
		unix.Close(fd)
	}
	l.pending = nil
}

// Lock describes one inhibitor ever taken.
type Lock struct {
	What, Who, Why, Mode string
	Held                 bool
}

// Locks returns every lock taken so far and whether the client still holds
// it (its descriptor is open). Call only when no Inhibit call is in flight.
func (l *Logind) Locks() []Lock {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settleLocked()
	out := make([]Lock, 0, len(l.locks))
	for _, k := range l.locks {
		pfd := []unix.PollFd{{Fd: int32(k.r.Fd()), Events: unix.POLLIN}}
		held := true
		if n, err := unix.Poll(pfd, 0); err == nil && n > 0 && pfd[0].Revents&unix.POLLHUP != 0 {
			held = false
		}
		out = append(out, Lock{What: k.What, Who: k.Who, Why: k.Why, Mode: k.Mode, Held: held})
	}
	return out
}

// HeldCount is the number of locks still held.
func (l *Logind) HeldCount() int {
	n := 0
	for _, k := range l.Locks() {
		if k.Held {
			n++
		}
	}
	return n
}

// NetworkManager's Metered values (NMMetered in libnm's nm-dbus-interface.h).
const (
	MeteredUnknown  uint32 = 0
	MeteredYes      uint32 = 1
	MeteredNo       uint32 = 2
	MeteredGuessYes uint32 = 3
	MeteredGuessNo  uint32 = 4
)

// NM stands in for NetworkManager's root object and its Metered property.
type NM struct{ props *prop.Properties }

// StartNM owns org.freedesktop.NetworkManager with Metered = metered.
func StartNM(t testing.TB, b *testbus.Bus, metered uint32) *NM {
	t.Helper()
	AllowOwn(t, b, "org.freedesktop.NetworkManager")
	conn := b.Conn(t)
	p, err := prop.Export(conn, "/org/freedesktop/NetworkManager", prop.Map{
		"org.freedesktop.NetworkManager": {
			"Metered":      {Value: metered, Emit: prop.EmitTrue},
			"State":        {Value: uint32(70), Emit: prop.EmitTrue}, // NM_STATE_CONNECTED_GLOBAL
			"Connectivity": {Value: uint32(4), Emit: prop.EmitTrue},  // NM_CONNECTIVITY_FULL
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	own(t, conn, "org.freedesktop.NetworkManager")
	return &NM{props: p}
}

// SetMetered changes the property (and emits PropertiesChanged).
func (n *NM) SetMetered(v uint32) {
	n.props.SetMust("org.freedesktop.NetworkManager", "Metered", v)
}

// UPower device states (UpDeviceState).
const (
	StateUnknown          uint32 = 0
	StateCharging         uint32 = 1
	StateDischarging      uint32 = 2
	StateEmpty            uint32 = 3
	StateFullyCharged     uint32 = 4
	StatePendingCharge    uint32 = 5
	StatePendingDischarge uint32 = 6
)

// UPower stands in for upowerd's display device.
type UPower struct{ props *prop.Properties }

// StartUPower owns org.freedesktop.UPower with a DisplayDevice.
func StartUPower(t testing.TB, b *testbus.Bus, present bool, percent float64, state uint32) *UPower {
	t.Helper()
	AllowOwn(t, b, "org.freedesktop.UPower")
	conn := b.Conn(t)
	dev := dbus.ObjectPath("/org/freedesktop/UPower/devices/DisplayDevice")
	if err := conn.Export(upowerManager{dev}, "/org/freedesktop/UPower", "org.freedesktop.UPower"); err != nil {
		t.Fatal(err)
	}
	p, err := prop.Export(conn, dev, prop.Map{
		"org.freedesktop.UPower.Device": {
			"Type":       {Value: uint32(2), Emit: prop.EmitTrue}, // UP_DEVICE_KIND_BATTERY
			"IsPresent":  {Value: present, Emit: prop.EmitTrue},
			"Percentage": {Value: percent, Emit: prop.EmitTrue},
			"State":      {Value: state, Emit: prop.EmitTrue},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	own(t, conn, "org.freedesktop.UPower")
	return &UPower{props: p}
}

// Set changes the display device's charge and state.
func (u *UPower) Set(percent float64, state uint32) {
	u.props.SetMust("org.freedesktop.UPower.Device", "Percentage", percent)
	u.props.SetMust("org.freedesktop.UPower.Device", "State", state)
}

type upowerManager struct{ dev dbus.ObjectPath }

// GetDisplayDevice is org.freedesktop.UPower.GetDisplayDevice() → o.
func (m upowerManager) GetDisplayDevice() (dbus.ObjectPath, *dbus.Error) { return m.dev, nil }
