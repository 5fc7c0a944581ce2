package bus

import (
	"sort"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/dbusapi"
)

// TestMethodsMatchIntrospection: the method table the server exports and
// the checked-in XML name the same methods (the e2e tests then call each
// one over a real bus).
func TestMethodsMatchIntrospection(t *testing.T) {
	iface, err := dbusapi.ParseInterface(dbusapi.UpgradeXML)
	if err != nil {
		t.Fatal(err)
	}
	var inXML []string
	for _, m := range iface.Methods {
		inXML = append(inXML, m.Name)
	}
	sort.Strings(inXML)
	if diff := cmp.Diff(inXML, MethodNames()); diff != "" {
		t.Errorf("methods (-XML +exported):\n%s", diff)
	}
}

// TestPropertiesMatchIntrospection: every property of daemon.Status has
// the name and D-Bus type the XML declares, and nothing is undeclared.
func TestPropertiesMatchIntrospection(t *testing.T) {
	iface, err := dbusapi.ParseInterface(dbusapi.UpgradeXML)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]string{}
	for _, p := range iface.Properties {
		declared[p.Name] = p.Type
		if p.Access != "read" {
			t.Errorf("property %s is %q: every property is read-only (the bus policy lets anyone call Set)", p.Name, p.Access)
		}
	}
	got := map[string]string{}
	for k, v := range (daemon.Status{}).Map() {
		got[k] = dbus.SignatureOf(v).String()
	}
	if diff := cmp.Diff(declared, got); diff != "" {
		t.Errorf("properties (-XML +daemon.Status):\n%s", diff)
	}
}
