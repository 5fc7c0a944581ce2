package bus

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/errdefs"
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

func TestParseOptions(t *testing.T) {
	v := dbus.MakeVariant
	for _, tc := range []struct {
		name string
		in   map[string]dbus.Variant
		want daemon.JobOpts
		err  string
	}{
		{"none", nil, daemon.JobOpts{}, ""},
		{"all", map[string]dbus.Variant{"force": v(true), "background": v(true), "tries": v(uint32(5))}, daemon.JobOpts{Force: true, Background: true, Tries: 5}, ""},
		{"unknown key", map[string]dbus.Variant{"forse": v(true)}, daemon.JobOpts{}, `unknown option "forse" (known: ` + strings.Join(optionNames, ", ") + `): invalid argument`},
		{"force as string", map[string]dbus.Variant{"force": v("true")}, daemon.JobOpts{}, `option "force" must be a boolean (b), got s: invalid argument`},
		{"tries as int32", map[string]dbus.Variant{"tries": v(int32(5))}, daemon.JobOpts{}, `option "tries" must be a uint32 (u) from 1 to 99: invalid argument`},
		{"tries zero", map[string]dbus.Variant{"tries": v(uint32(0))}, daemon.JobOpts{}, `option "tries" must be a uint32 (u) from 1 to 99: invalid argument`},
		{"tries 100", map[string]dbus.Variant{"tries": v(uint32(100))}, daemon.JobOpts{}, `option "tries" must be a uint32 (u) from 1 to 99: invalid argument`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOptions(tc.in)
			msg := ""
			if err != nil {
				msg = err.Error()
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("%v is not InvalidArgument", err)
				}
			}
			if diff := cmp.Diff(tc.err, msg); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if tc.err == "" {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}
