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

// TestPropertiesMatchIntrospection: every property of the table has
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
	for k, v := range values(daemon.Status{}) {
		got[k] = dbus.SignatureOf(v).String()
	}
	if diff := cmp.Diff(declared, got); diff != "" {
		t.Errorf("properties (-XML +table):\n%s", diff)
	}
}

// TestChanged: PropertiesChanged carries exactly the properties whose typed
// values differ; a Drift list with the same entries is no change.
func TestChanged(t *testing.T) {
	base := daemon.Status{State: daemon.StateDownloading, Job: 3, Progress: 40, Drift: []string{"etc/x: mode"}}
	for _, tc := range []struct {
		name string
		edit func(*daemon.Status)
		want map[string]any
	}{
		{"nothing", func(*daemon.Status) {}, map[string]any{}},
		{"same drift, new slice", func(s *daemon.Status) { s.Drift = []string{"etc/x: mode"} }, map[string]any{}},
		{"progress and bytes", func(s *daemon.Status) { s.Progress, s.BytesDone = 41, 7 }, map[string]any{"Progress": uint32(41), "BytesDone": uint64(7)}},
		{"state", func(s *daemon.Status) { s.State = daemon.StateApplying }, map[string]any{"State": "applying"}},
		{"drift gone", func(s *daemon.Status) { s.Drift = nil }, map[string]any{"Drift": []string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur := base
			tc.edit(&cur)
			if diff := cmp.Diff(tc.want, changed(base, cur)); diff != "" {
				t.Errorf("changed (-want +got):\n%s", diff)
			}
		})
	}
}
