package testbus

import (
	"os"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/google/go-cmp/cmp"
)

// nobody is Debian's unprivileged user: it has a passwd entry, so it can
// authenticate to the bus, and no policy file grants it anything.
const nobody = 65534

// requireRoot skips tests that own the project's names or switch users:
// both need root, and without root there is nothing honest to test.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may own org.laptop.* and run setpriv")
	}
}

// pinger is a stand-in for the real services: one method, so a test can
// tell "the policy let the call through" (a reply) from "it did not"
// (AccessDenied from the bus).
type pinger struct{}

func (pinger) Ping() (string, *dbus.Error) { return "pong", nil }

// serve exports a pinger at path under iface on conn and then claims name,
// in that order, so no caller sees the name without the object.
func serve(t *testing.T, conn *dbus.Conn, name string, path dbus.ObjectPath, iface string) {
	t.Helper()
	if err := conn.Export(pinger{}, path, iface); err != nil {
		t.Fatalf("export %s: %v", path, err)
	}
	node := introspect.Introspectable(`<node><interface name="` + iface + `"><method name="Ping"><arg type="s" direction="out"/></method></interface></node>`)
	if err := conn.Export(node, path, "org.freedesktop.DBus.Introspectable"); err != nil {
		t.Fatalf("export introspection at %s: %v", path, err)
	}
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil {
		t.Fatalf("root RequestName(%s): %v", name, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("root RequestName(%s) = %v, want primary owner", name, reply)
	}
}

func TestStartAndConnect(t *testing.T) {
	b := Start(t)
	if !strings.HasPrefix(b.Addr, "unix:path=") {
		t.Errorf("Addr = %q, want a unix:path= address", b.Addr)
	}
	conn := b.Conn(t)
	var id string
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatalf("GetId: %v", err)
	}
	var env string
	for _, kv := range b.Env() {
		if strings.HasPrefix(kv, EnvVar+"=") {
			if env != "" {
				t.Errorf("Env has %s twice", EnvVar)
			}
			env = kv
		}
	}
	if want := EnvVar + "=" + b.Addr; env != want {
		t.Errorf("Env: got %q, want %q", env, want)
	}
	if got := os.Getenv(EnvVar); got == b.Addr {
		t.Errorf("Start set %s in the test process; it must set nothing globally", EnvVar)
	}
}

// TestPolicy checks the project's policy files as loaded by a real
// dbus-daemon: root owns both names; nobody owns neither, may call the
// daemon's interfaces and may not reach the security service at all.
func TestPolicy(t *testing.T) {
	requireRoot(t)
	b := Start(t)
	serve(t, b.Conn(t), "org.laptop.Upgrade1", "/org/laptop/Upgrade1", "org.laptop.Upgrade1")
	serve(t, b.Conn(t), "org.laptop.Security1", "/org/laptop/Security1", "org.laptop.Security1")

	// root may call the security service (the daemon's user in tests).
	var got string
	root := b.Conn(t)
	if err := root.Object("org.laptop.Security1", "/org/laptop/Security1").
		Call("org.laptop.Security1.Ping", 0).Store(&got); err != nil || got != "pong" {
		t.Fatalf("root Security1.Ping = %q, %v; want pong", got, err)
	}

	denied := "org.freedesktop.DBus.Error.AccessDenied"
	tests := []struct {
		name string
		argv []string
		want string // in the combined output
		ok   bool   // exit status 0 expected
	}{
		{"own Upgrade1", ownArgs("org.laptop.Upgrade1"), denied, false},
		{"own Security1", ownArgs("org.laptop.Security1"), denied, false},
		{"call Upgrade1", callArgs("org.laptop.Upgrade1", "/org/laptop/Upgrade1", "org.laptop.Upgrade1.Ping"), "pong", true},
		{"introspect Upgrade1", callArgs("org.laptop.Upgrade1", "/org/laptop/Upgrade1", "org.freedesktop.DBus.Introspectable.Introspect"), "<node", true},
		{"peer ping Upgrade1", callArgs("org.laptop.Upgrade1", "/org/laptop/Upgrade1", "org.freedesktop.DBus.Peer.Ping"), "method return", true},
		{"unlisted interface on Upgrade1", callArgs("org.laptop.Upgrade1", "/org/laptop/Upgrade1", "org.laptop.Other.Ping"), denied, false},
		{"call Security1", callArgs("org.laptop.Security1", "/org/laptop/Security1", "org.laptop.Security1.Ping"), denied, false},
		{"introspect Security1", callArgs("org.laptop.Security1", "/org/laptop/Security1", "org.freedesktop.DBus.Introspectable.Introspect"), denied, false},
		{"gdbus call Upgrade1", []string{"gdbus", "call", "--system", "--dest", "org.laptop.Upgrade1",
			"--object-path", "/org/laptop/Upgrade1", "--method", "org.laptop.Upgrade1.Ping"}, "('pong',)", true},
		{"gdbus call Security1", []string{"gdbus", "call", "--system", "--dest", "org.laptop.Security1",
			"--object-path", "/org/laptop/Security1", "--method", "org.laptop.Security1.Ping"}, denied, false},
		{"python call Upgrade1", []string{"/usr/bin/python3", "-c", pythonPing}, "pong", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := b.Command(nobody, tc.argv[0], tc.argv[1:]...).CombinedOutput()
			if (err == nil) != tc.ok || !strings.Contains(string(out), tc.want) {
				t.Errorf("as nobody: %s\nexit: %v\noutput: %s\nwant ok=%v and output containing %q",
					strings.Join(tc.argv, " "), err, out, tc.ok, tc.want)
			}
		})
	}
}

// pythonPing checks that python's dbus.SystemBus() follows Env(), as the
// Sugar control panel's tests rely on.
const pythonPing = `import dbus
o = dbus.SystemBus().get_object("org.laptop.Upgrade1", "/org/laptop/Upgrade1")
print(o.Ping(dbus_interface="org.laptop.Upgrade1"))`

func ownArgs(name string) []string {
	return []string{"dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.DBus",
		"/org/freedesktop/DBus", "org.freedesktop.DBus.RequestName", "string:" + name, "uint32:4"}
}

func callArgs(dest, path, method string) []string {
	return []string{"dbus-send", "--system", "--print-reply", "--dest=" + dest, path, method}
}

// TestCommandRunsAsUser checks that Command really drops to the uid and gid
// and clears supplementary groups, so a denial in a test means the policy.
func TestCommandRunsAsUser(t *testing.T) {
	requireRoot(t)
	b := Start(t)
	out, err := b.Command(nobody, "id").CombinedOutput()
	if err != nil {
		t.Fatalf("id as nobody: %v: %s", err, out)
	}
	if want := "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"; strings.TrimSpace(string(out)) != want {
		t.Errorf("id as nobody: got %q, want %q", out, want)
	}
	out, err = b.Command(nobody, "sh", "-c", "echo $"+EnvVar).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != b.Addr {
		t.Errorf("%s in the command: got %q (%v), want %q", EnvVar, out, err, b.Addr)
	}
}

// TestStartPolkit checks that polkitd comes up on the bus with the
// project's actions registered.
func TestStartPolkit(t *testing.T) {
	requireRoot(t)
	b := Start(t)
	b.StartPolkit(t, "")
	var actions []struct {
		ID, Description, Message, Vendor, VendorURL, Icon string
		Any, Inactive, Active                             uint32
		Annotations                                       map[string]string
	}
	conn := b.Conn(t)
	err := conn.Object("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority").
		Call("org.freedesktop.PolicyKit1.Authority.EnumerateActions", 0, "").Store(&actions)
	if err != nil {
		t.Fatalf("EnumerateActions: %v", err)
	}
	// polkit's ImplicitAuthorization values, as polkitd parsed <defaults>.
	const (
		no            = 0
		authAdmin     = 2
		authAdminKeep = 4
		yes           = 5
	)
	want := map[string][3]uint32{
		"org.laptop.upgrade.check":         {no, no, yes},
		"org.laptop.upgrade.upgrade":       {authAdminKeep, authAdminKeep, yes},
		"org.laptop.upgrade.rollback":      {authAdmin, authAdmin, authAdmin},
		"org.laptop.upgrade.upgrade-other": {authAdmin, authAdmin, authAdmin},
	}
	got := map[string][3]uint32{}
	for _, a := range actions {
		if strings.HasPrefix(a.ID, "org.laptop.") {
			got[a.ID] = [3]uint32{a.Any, a.Inactive, a.Active}
			if a.Description == "" || a.Message == "" {
				t.Errorf("action %s: empty description or message", a.ID)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions as polkitd sees them (any, inactive, active) (-want +got):\n%s", diff)
	}
}
