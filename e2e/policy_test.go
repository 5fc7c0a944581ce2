package e2e

import (
	"strings"
	"testing"

	"laptop.org/upgrade/layout"
)

// nobody is Debian's unprivileged user: it has a passwd entry (so it can
// connect to the bus) and nothing grants it anything.
const nobody = 65534

// gdbusCall runs `gdbus call --system` as uid; gdbus prints the D-Bus error
// name of a failed call ("GDBus.Error:NAME: message"), busctl does not.
func (e *env) gdbusCall(uid int, dest, path, method string, args ...string) result {
	e.t.Helper()
	return e.run(uid, "gdbus", append([]string{"call", "--system", "--dest", dest, "--object-path", path, "--method", method}, args...)...)
}

// TestPolicyWithoutPolkit: without polkit only root may act. nobody reads
// every property and the history with busctl and gdbus, but every method
// that acts answers NotAuthorized, the names cannot be taken over, the
// security service is out of reach, and upgradectl says so with exit 4.
func TestPolicyWithoutPolkit(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	const up, path = "org.laptop.Upgrade1", "/org/laptop/Upgrade1"

	if r := e.run(nobody, "busctl", "--system", "get-property", up, path, up, "State"); r.code != 0 || strings.TrimSpace(r.stdout) != `s "idle"` {
		t.Errorf("nobody: busctl get-property State:\n%s", r)
	}
	if r := e.gdbusCall(nobody, up, path, "org.freedesktop.DBus.Properties.GetAll", up); r.code != 0 || !strings.Contains(r.stdout, "'CurrentVersion': <'1'>") {
		t.Errorf("nobody: gdbus GetAll:\n%s", r)
	}
	if r := e.gdbusCall(nobody, up, path, up+".History"); r.code != 0 {
		t.Errorf("nobody: History:\n%s", r)
	}
	if r := e.run(nobody, "gdbus", "introspect", "--system", "--dest", up, "--object-path", path); r.code != 0 {
		t.Errorf("nobody: introspect:\n%s", r)
	}

	const notAuthorized = "GDBus.Error:org.laptop.Upgrade1.Error.NotAuthorized"
	for _, c := range []struct {
		method string
		args   []string
	}{
		{"Upgrade", []string{"", "{}"}},
		{"UpgradeTo", []string{""}},
		{"Check", nil},
		{"Preflight", []string{""}},
		{"Cancel", nil},
		{"Rollback", nil},
	} {
		r := e.gdbusCall(nobody, up, path, up+"."+c.method, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, notAuthorized) || !strings.Contains(r.stderr, "polkit is not running") {
			t.Errorf("nobody: %s: want %s saying polkit is not running:\n%s", c.method, notAuthorized, r)
		}
	}

	for _, name := range []string{"org.laptop.Upgrade1", "org.laptop.Security1"} {
		r := e.gdbusCall(nobody, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.RequestName", name, "4")
		if r.code == 0 || !strings.Contains(r.stderr, "org.freedesktop.DBus.Error.AccessDenied") {
			t.Errorf("nobody: RequestName(%s): want AccessDenied:\n%s", name, r)
		}
	}

	for _, m := range []string{"GetPointer", "MarkGood", "Rollback"} {
		r := e.gdbusCall(nobody, "org.laptop.Security1", "/org/laptop/Security1", "org.laptop.Security1."+m)
		if r.code == 0 || !strings.Contains(r.stderr, "org.freedesktop.DBus.Error.AccessDenied") {
			t.Errorf("nobody: Security1.%s: want AccessDenied from the bus:\n%s", m, r)
		}
	}

	for _, args := range [][]string{{"upgrade"}, {"check"}, {"cancel"}, {"rollback"}} {
		r := e.ctl(nobody, args...)
		if r.code != 4 || !strings.Contains(r.stderr, "not running; only root may") {
			t.Errorf("nobody: upgradectl %s: want exit 4 and the reason:\n%s", args[0], r)
		}
	}
	if r := e.ctl(nobody, "status"); r.code != 0 {
		t.Errorf("nobody: upgradectl status:\n%s", r)
	}
	if p := e.pointer(); p.Next != layout.SlotA || p.Trial {
		t.Errorf("denied callers changed the boot pointer: %+v", p)
	}
	if hs := history(t, e.conn()); len(hs) != 0 {
		t.Errorf("denied callers left jobs behind: %v", hs)
	}
}

// allowUpgradeRules lets nobody upgrade (and nothing else); denyRules
// refuses nobody everything the daemon asks about.
const (
	allowUpgradeRules = `polkit.addRule(function(action, subject) {
	if (action.id == "org.laptop.upgrade.upgrade" && subject.user == "nobody") {
		return polkit.Result.YES;
	}
});`
	denyRules = `polkit.addRule(function(action, subject) {
	if (action.id.indexOf("org.laptop.upgrade.") == 0 && subject.user == "nobody") {
		return polkit.Result.NO;
	}
});`
)

// TestPolicyWithPolkit runs the real polkitd with site rules: the rule
// that allows nobody to upgrade lets upgradectl upgrade through (and only
// that action), the rule that denies stops it with exit 4, and root needs
// no rule either way.
func TestPolicyWithPolkit(t *testing.T) {
	rp := smallRepo(t)
	t.Run("allow", func(t *testing.T) {
		e := newEnv(t, rp, envOpts{})
		e.bus.StartPolkit(t, allowUpgradeRules)
		r := e.ctl(nobody, "upgrade")
		if r.code != 0 || !strings.Contains(r.stdout, "finished: version 2 is ready in slot b") {
			t.Fatalf("nobody allowed by polkit: upgradectl upgrade:\n%s", r)
		}
		if p := e.pointer(); p.Next != layout.SlotB || !p.Trial {
			t.Errorf("boot pointer after nobody's upgrade: %+v", p)
		}
		// The rule is about upgrading only: rollback needs an admin.
		if r := e.ctl(nobody, "rollback"); r.code != 4 {
			t.Errorf("nobody: rollback without a rule: want exit 4:\n%s", r)
		}
	})
	t.Run("deny", func(t *testing.T) {
		e := newEnv(t, rp, envOpts{})
		e.bus.StartPolkit(t, denyRules)
		r := e.ctl(nobody, "upgrade")
		if r.code != 4 || !strings.Contains(r.stderr, "polkit denied uid 65534") {
			t.Errorf("nobody denied by polkit: upgradectl upgrade: want exit 4:\n%s", r)
		}
		if r := e.ctl(nobody, "check"); r.code != 4 {
			t.Errorf("nobody denied by polkit: upgradectl check: want exit 4:\n%s", r)
		}
		if p := e.pointer(); p.Next != layout.SlotA {
			t.Errorf("a denied upgrade moved the pointer: %+v", p)
		}
		// Root is allowed without asking polkit.
		if r := e.ctl(0, "upgrade"); r.code != 0 {
			t.Errorf("root with polkit running: upgradectl upgrade:\n%s", r)
		}
	})
}
