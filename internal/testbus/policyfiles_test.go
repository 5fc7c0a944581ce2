package testbus

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// These tests read the installed policy files as data, without a bus, so a
// mistake shows even where the root-only tests cannot run. The bus tests
// (TestPolicy, TestStartPolkit) then show that the real daemons agree.

type busconfigFile struct {
	XMLName  xml.Name `xml:"busconfig"`
	Policies []struct {
		User    string `xml:"user,attr"`
		Context string `xml:"context,attr"`
		Rules   []struct {
			XMLName xml.Name
			Attrs   []xml.Attr `xml:",any,attr"`
		} `xml:",any"`
	} `xml:"policy"`
}

// busRules flattens a policy file to one line per rule ("root allow
// own=org.x"), so the whole policy compares as a list.
func busRules(t *testing.T, path string) []string {
	t.Helper()
	var f busconfigFile
	readXML(t, path, &f)
	var rules []string
	for _, p := range f.Policies {
		who := p.User
		if p.Context != "" {
			who = p.Context
		}
		for _, r := range p.Rules {
			var attrs []string
			for _, a := range r.Attrs {
				attrs = append(attrs, a.Name.Local+"="+a.Value)
			}
			sort.Strings(attrs)
			rules = append(rules, who+" "+r.XMLName.Local+" "+strings.Join(attrs, " "))
		}
	}
	return rules
}

func readXML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestBusPolicyFiles(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	up := "send_destination=org.laptop.Upgrade1 send_interface="
	tests := []struct {
		file string
		want []string
	}{
		{"org.laptop.Upgrade1.conf", []string{
			"root allow own=org.laptop.Upgrade1",
			"default allow " + up + "org.laptop.Upgrade1",
			"default allow " + up + "org.freedesktop.DBus.Properties",
			"default allow " + up + "org.freedesktop.DBus.Introspectable",
			"default allow " + up + "org.freedesktop.DBus.Peer",
		}},
		{"org.laptop.Security1.conf", []string{
			"root allow own=org.laptop.Security1",
			"root allow send_destination=org.laptop.Security1",
			"upgrade allow send_destination=org.laptop.Security1",
			"default deny own=org.laptop.Security1",
			"default deny send_destination=org.laptop.Security1",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got := busRules(t, filepath.Join(root, "systemd", "dbus", tc.file))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolkitPolicyFile(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		XMLName xml.Name `xml:"policyconfig"`
		Actions []struct {
			ID          string `xml:"id,attr"`
			Description string `xml:"description"`
			Message     string `xml:"message"`
			Any         string `xml:"defaults>allow_any"`
			Inactive    string `xml:"defaults>allow_inactive"`
			Active      string `xml:"defaults>allow_active"`
		} `xml:"action"`
	}
	readXML(t, filepath.Join(root, "systemd", "polkit", "org.laptop.upgrade.policy"), &f)
	got := map[string][3]string{}
	for _, a := range f.Actions {
		got[a.ID] = [3]string{a.Any, a.Inactive, a.Active}
		if strings.TrimSpace(a.Description) == "" || strings.TrimSpace(a.Message) == "" {
			t.Errorf("action %s: description and message are shown to users and must not be empty", a.ID)
		}
	}
	want := map[string][3]string{
		"org.laptop.upgrade.check":    {"no", "no", "yes"},
		"org.laptop.upgrade.upgrade":  {"auth_admin_keep", "auth_admin_keep", "yes"},
		"org.laptop.upgrade.rollback": {"auth_admin", "auth_admin", "auth_admin"},
		// Another version than the newest: never without an administrator.
		"org.laptop.upgrade.upgrade-other": {"auth_admin", "auth_admin", "auth_admin"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions (any, inactive, active) (-want +got):\n%s", diff)
	}
}
