package e2e

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"laptop.org/upgrade/dbusapi"
)

// checkedIn reads an interface from the XML file in dbusapi/ as it is in
// the tree now (not the copy compiled into the test binary).
func checkedIn(t *testing.T, file string) introspect.Interface {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "dbusapi", file))
	if err != nil {
		t.Fatal(err)
	}
	iface, err := dbusapi.ParseInterface(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return iface
}

// introspected asks the running service through gdbus, as a person would.
func (e *env) introspected(dest, path, iface string) introspect.Interface {
	e.t.Helper()
	r := e.run(0, "gdbus", "introspect", "--system", "--dest", dest, "--object-path", path, "--xml")
	if r.code != 0 {
		e.t.Fatalf("gdbus introspect %s:\n%s", dest, r)
	}
	var n introspect.Node
	if err := xml.Unmarshal([]byte(r.stdout), &n); err != nil {
		e.t.Fatalf("parse introspection of %s: %v\n%s", dest, err, r.stdout)
	}
	for _, i := range n.Interfaces {
		if i.Name == iface {
			return i
		}
	}
	e.t.Fatalf("%s does not introspect interface %s:\n%s", dest, iface, r.stdout)
	return introspect.Interface{}
}

// zeroArg is a harmless value of a D-Bus type, to call a method with.
func zeroArg(t *testing.T, typ string, slot string) any {
	t.Helper()
	switch typ {
	case "s":
		return slot
	case "u":
		return uint32(0)
	case "t":
		return uint64(0)
	case "b":
		return false
	case "a{sv}":
		return map[string]dbus.Variant{}
	}
	t.Fatalf("no test value for D-Bus type %q", typ)
	return nil
}

// callEach calls every method of iface with harmless arguments and checks
// that the service knows it with that signature: an error reply is fine
// (Busy, NotAuthorized, ...), UnknownMethod or a bus-level InvalidArgs is
// not. A successful reply must carry the declared out signature.
func callEach(t *testing.T, obj dbus.BusObject, iface introspect.Interface, slot string) {
	t.Helper()
	for _, m := range iface.Methods {
		var args []any
		var outSig string
		for _, a := range m.Args {
			if a.Direction == "out" {
				outSig += a.Type
			} else {
				args = append(args, zeroArg(t, a.Type, slot))
			}
		}
		call := obj.Call(iface.Name+"."+m.Name, 0, args...)
		switch name := dbusErrName(call.Err); name {
		case "":
			if got := dbus.SignatureOf(call.Body...).String(); got != outSig {
				t.Errorf("%s returned signature %q, introspection says %q", m.Name, got, outSig)
			}
		case "org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.DBus.Error.UnknownInterface",
			"org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.InvalidArgs":
			t.Errorf("%s.%s: %s (%s)", iface.Name, m.Name, name, dbusErrMsg(call.Err))
		default:
			t.Logf("%s: %s", m.Name, name)
		}
	}
}

// TestIntrospection compares what the daemons really export (asked with
// gdbus) with the checked-in XML, then calls every declared method, and
// checks that GetAll returns exactly the declared properties with their
// declared types.
func TestIntrospection(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	sortIface := cmpopts.SortSlices(func(a, b introspect.Method) bool { return a.Name < b.Name })
	sortProps := cmpopts.SortSlices(func(a, b introspect.Property) bool { return a.Name < b.Name })

	want := checkedIn(t, "org.laptop.Upgrade1.xml")
	got := e.introspected(dbusapi.UpgradeName, string(dbusapi.UpgradePath), dbusapi.UpgradeInterface)
	if diff := cmp.Diff(want, got, sortIface, sortProps); diff != "" {
		t.Errorf("org.laptop.Upgrade1 as exported differs from dbusapi/org.laptop.Upgrade1.xml (-file +exported):\n%s", diff)
	}
	wantSec := checkedIn(t, "org.laptop.Security1.xml")
	gotSec := e.introspected(dbusapi.SecurityName, string(dbusapi.SecurityPath), dbusapi.SecurityIface)
	if diff := cmp.Diff(wantSec, gotSec, sortIface); diff != "" {
		t.Errorf("org.laptop.Security1 as exported differs from dbusapi/org.laptop.Security1.xml (-file +exported):\n%s", diff)
	}

	conn := e.conn()
	// Properties: the names and types GetAll returns are the declared ones.
	declared := map[string]string{}
	for _, p := range want.Properties {
		declared[p.Name] = p.Type
	}
	returned := map[string]string{}
	for k, v := range props(t, conn) {
		returned[k] = v.Signature().String()
	}
	if diff := cmp.Diff(declared, returned); diff != "" {
		t.Errorf("GetAll vs declared properties (-declared +returned):\n%s", diff)
	}
	// The standard answers for what is not there, and every property is
	// read-only (the bus policy lets anyone call Set).
	for _, c := range []struct {
		method string
		args   []any
		want   string
	}{
		{"Get", []any{dbusapi.UpgradeInterface, "NoSuchProperty"}, "org.freedesktop.DBus.Error.UnknownProperty"},
		{"Get", []any{"org.example.Other", "State"}, "org.freedesktop.DBus.Error.UnknownInterface"},
		{"GetAll", []any{"org.bogus"}, "org.freedesktop.DBus.Error.UnknownInterface"},
		{"Set", []any{dbusapi.UpgradeInterface, "State", dbus.MakeVariant("idle")}, "org.freedesktop.DBus.Error.PropertyReadOnly"},
	} {
		err := upgradeObj(conn).Call("org.freedesktop.DBus.Properties."+c.method, 0, c.args...).Err
		if got := dbusErrName(err); got != c.want {
			t.Errorf("Properties.%s%v: %q (%s), want %s", c.method, c.args, got, dbusErrMsg(err), c.want)
		}
	}
	// The signal: what a client receives matches the declaration.
	var finishedSig string
	for _, s := range want.Signals {
		if s.Name == "Finished" {
			for _, a := range s.Args {
				finishedSig += a.Type
			}
		}
	}
	w := e.watch()
	callEach(t, upgradeObj(conn), want, "")
	// Upgrade (called above with "") started a job; UpgradeTo met Busy and
	// Cancel stopped it. Its Finished arrives with the declared signature.
	job, err := upgradeObj(conn).GetProperty(dbusapi.UpgradeInterface + ".Job")
	if err != nil {
		t.Fatal(err)
	}
	f := w.waitFinished(job.Value().(uint32), jobTimeout)
	if f.sig.String() != finishedSig {
		t.Errorf("Finished arrived with signature %q, declared %q", f.sig, finishedSig)
	}

	// Security1, as root: "a" is the running slot, so Activate and
	// Invalidate refuse it and nothing changes on disk.
	before := e.pointer()
	callEach(t, conn.Object(dbusapi.SecurityName, dbusapi.SecurityPath), wantSec, "a")
	if after := e.pointer(); after != before {
		t.Errorf("calling the security service's methods on the running slot changed the pointer: %+v -> %+v", before, after)
	}
}
