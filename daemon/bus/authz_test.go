package bus

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testbus"
)

// These tests run the Authorizer against a real dbus-daemon with the
// project's policy files and, where it matters, a real polkitd: the caller
// identities come from the kernel through the bus, as in production.

const (
	authzNobody = 65534
	// The public names, spelled out so the test does not follow the
	// package's constants if they drift from DESIGN.md.
	authzCheck    = "org.laptop.upgrade.check"
	authzUpgrade  = "org.laptop.upgrade.upgrade"
	authzRollback = "org.laptop.upgrade.rollback"
	authzErrName  = "org.laptop.Upgrade1.Error.NotAuthorized"
)

// authzRules is what a site administrator might write: nobody may check,
// and no other org.laptop.upgrade action is granted to anyone.
const authzRules = `polkit.addRule(function(action, subject) {
	if (action.id == "org.laptop.upgrade.check" && subject.user == "nobody")
		return polkit.Result.YES;
	if (action.id.indexOf("org.laptop.upgrade.") == 0)
		return polkit.Result.NO;
});`

// authzProbe stands in for the daemon's mutating methods: it authorizes its
// caller for the action given and hands the Go error to the test, so the
// test can check the error class, not only what crossed the bus.
type authzProbe struct {
	a    *Authorizer
	errs chan error
}

func (p *authzProbe) Try(sender dbus.Sender, action string) *dbus.Error {
	err := p.a.Check(context.Background(), sender, action, true)
	p.errs <- err
	if err != nil {
		return dbus.NewError(authzErrName, []any{err.Error()})
	}
	return nil
}

// authzServe starts a bus and serves a probe as root under the daemon's
// name, whose policy lets anyone call the org.laptop.Upgrade1 interface.
func authzServe(t *testing.T) (*testbus.Bus, *authzProbe) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may own org.laptop.Upgrade1 and switch to nobody")
	}
	b := testbus.Start(t)
	conn := b.Conn(t)
	p := &authzProbe{a: NewAuthorizer(conn), errs: make(chan error, 1)}
	if err := conn.Export(p, "/org/laptop/Upgrade1", "org.laptop.Upgrade1"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.laptop.Upgrade1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName = %v, %v", reply, err)
	}
	return b, p
}

// result is the Authorizer's verdict on the last call.
func (p *authzProbe) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the probe was never called")
		return nil
	}
}

// asRoot calls the probe over a second root connection.
func (p *authzProbe) asRoot(t *testing.T, b *testbus.Bus, action string) error {
	t.Helper()
	call := b.Conn(t).Object("org.laptop.Upgrade1", "/org/laptop/Upgrade1").
		Call("org.laptop.Upgrade1.Try", 0, action)
	err := p.result(t)
	if (call.Err == nil) != (err == nil) {
		t.Errorf("bus reply %v disagrees with Check's %v", call.Err, err)
	}
	return err
}

// asNobody calls the probe from a dbus-send process running as nobody.
func (p *authzProbe) asNobody(t *testing.T, b *testbus.Bus, action string) error {
	t.Helper()
	out, exitErr := b.Command(authzNobody, "dbus-send", "--system", "--print-reply",
		"--dest=org.laptop.Upgrade1", "/org/laptop/Upgrade1", "org.laptop.Upgrade1.Try",
		"string:"+action).CombinedOutput()
	err := p.result(t)
	if (exitErr == nil) != (err == nil) {
		t.Errorf("dbus-send (%v: %s) disagrees with Check's %v", exitErr, out, err)
	}
	if err != nil && !strings.Contains(string(out), authzErrName) {
		t.Errorf("dbus-send output lacks the error name: %s", out)
	}
	return err
}

func authzWantDenied(t *testing.T, err error, why string) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrNotAuthorized) {
		t.Fatalf("Check = %v, want an error wrapping ErrNotAuthorized", err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("Check = %q, want it to say %q", err, why)
	}
}

func TestAuthorizerRootWithoutPolkit(t *testing.T) {
	b, p := authzServe(t)
	if err := p.asRoot(t, b, authzUpgrade); err != nil {
		t.Fatalf("root denied without polkit: %v", err)
	}
}

func TestAuthorizerNobodyWithoutPolkit(t *testing.T) {
	b, p := authzServe(t)
	err := p.asNobody(t, b, authzUpgrade)
	authzWantDenied(t, err, "polkit is not running; only root may")
	authzWantDenied(t, err, "uid 65534")
}

// TestAuthorizerWithPolkit asks a real polkitd: its rules, not the code,
// decide for nobody; root is still not asked about.
func TestAuthorizerWithPolkit(t *testing.T) {
	b, p := authzServe(t)
	b.StartPolkit(t, authzRules)
	if err := p.asNobody(t, b, authzCheck); err != nil {
		t.Errorf("nobody denied %s, which the rules allow: %v", authzCheck, err)
	}
	for _, action := range []string{authzUpgrade, authzRollback} {
		authzWantDenied(t, p.asNobody(t, b, action), "polkit denied uid 65534")
	}
	if err := p.asRoot(t, b, authzUpgrade); err != nil {
		t.Errorf("root denied with polkit: %v", err)
	}
}

func TestAuthorizerCallerUID(t *testing.T) {
	b := testbus.Start(t)
	conn := b.Conn(t)
	a := NewAuthorizer(conn)
	uid, err := a.CallerUID(dbus.Sender(conn.Names()[0]))
	if err != nil || uid != uint32(os.Geteuid()) {
		t.Errorf("CallerUID(self) = %d, %v; want %d", uid, err, os.Geteuid())
	}
	if _, err := a.CallerUID(":1.4242"); err == nil {
		t.Error("CallerUID of a name nobody holds succeeded")
	}
	if _, err := a.CallerUID(""); err == nil {
		t.Error("CallerUID of an empty sender succeeded")
	}
	// A caller the bus cannot identify is denied, even though uid 0 is
	// the zero value.
	authzWantDenied(t, a.Check(context.Background(), ":1.4242", authzCheck, true), "cannot identify the caller")
}

// TryMsg is Try reading the caller and the interactive flag from the
// message, as the daemon's methods do.
func (p *authzProbe) TryMsg(msg dbus.Message, action string) *dbus.Error {
	err := p.a.Check(context.Background(), senderOf(msg), action, Interactive(msg))
	p.errs <- err
	if err != nil {
		return dbus.NewError(authzErrName, []any{err.Error()})
	}
	return nil
}

// TestAuthorizerInteractiveFlag: polkit may ask for a password only when
// the caller's message allows it (ALLOW_INTERACTIVE_AUTHORIZATION, which
// busctl sets by default and upgradectl sets); without the flag an action
// that needs authentication is refused, saying how to get the prompt.
func TestAuthorizerInteractiveFlag(t *testing.T) {
	b, p := authzServe(t)
	b.StartPolkit(t, `polkit.addRule(function(action, subject) {
	if (action.id == "org.laptop.upgrade.rollback")
		return polkit.Result.AUTH_ADMIN;
});`)
	for _, tc := range []struct {
		allow string
		why   string
	}{
		{"no", "call with interactive authorization allowed"},
		{"yes", "no authentication agent answered"},
	} {
		out, exitErr := b.Command(authzNobody, "busctl", "--system", "--allow-interactive-authorization="+tc.allow,
			"call", "org.laptop.Upgrade1", "/org/laptop/Upgrade1", "org.laptop.Upgrade1", "TryMsg", "s", authzRollback).CombinedOutput()
		err := p.result(t)
		if exitErr == nil {
			t.Errorf("busctl with interaction %s succeeded: %s", tc.allow, out)
		}
		authzWantDenied(t, err, tc.why)
	}
}
