package daemon

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the generated reference files")

// TestConfigExampleIsDefaults: uncommenting every line of the installed
// example changes nothing but the mirror, so the documented defaults are
// the parser's.
func TestConfigExampleIsDefaults(t *testing.T) {
	var b strings.Builder
	for _, l := range strings.Split(ConfigExample(), "\n") {
		if strings.HasPrefix(l, "#") && strings.Contains(l, " = ") && findKey(strings.Fields(l[1:])[0]) != nil {
			b.WriteString(l[1:] + "\n")
		}
	}
	got, err := ParseFileConfig([]byte(b.String()), FileConfig{})
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	want := DefaultFileConfig()
	want.Mirrors = []string{"http://[fd42::1]:8080/"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("example differs from the defaults (-want +got):\n%s", d)
	}
}

// TestConfigReferenceFiles: the checked-in reference page and example are
// what the key table generates (go test ./daemon -run ConfigReference -update).
func TestConfigReferenceFiles(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"../docs/upgraded.conf.md", ConfigReference()},
		{"../systemd/upgraded.conf", ConfigExample()},
	} {
		if *update {
			if err := os.WriteFile(filepath.FromSlash(tc.path), []byte(tc.want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(filepath.FromSlash(tc.path))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, string(got)); d != "" {
			t.Errorf("%s is stale; run go test ./daemon -run ConfigReference -update (-want +got):\n%s", tc.path, d)
		}
	}
}

// TestConfigKeysDocumented: every key the parser knows has a doc and a
// manual entry.
func TestConfigKeysDocumented(t *testing.T) {
	man := ConfigManual()
	for _, k := range configKeys {
		if k.Doc == "" || !strings.Contains(man, "**"+k.Name+"**") || !strings.Contains(ConfigReference(), "`"+k.Name+"`") {
			t.Errorf("key %s is not documented", k.Name)
		}
	}
}

// TestConfigBadValues: out-of-range values name their line.
func TestConfigBadValues(t *testing.T) {
	for _, in := range []string{"tries = 0", "parallel = -1", "min_battery = 101", "stall_timeout = 0s", "allow_metered = maybe", "bogus = 1", "channel = ../x"} {
		_, err := ParseFileConfig([]byte("# x\n"+in+"\n"), DefaultFileConfig())
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: err = %v, want an error naming line 2", in, err)
		}
	}
}
