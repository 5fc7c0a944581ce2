package systemd_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"laptop.org/upgrade/internal/testbus"
)

// binDir returns the built binaries (make sets UPGRADE_BIN), building them
// into a temp dir when run by hand: verify fails on a missing ExecStart.
func binDir(t *testing.T) string {
	if d := os.Getenv("UPGRADE_BIN"); d != "" {
		return d
	}
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	cmd := exec.Command("go", "build", "-o", d+"/", "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return d
}

// Render copies dir's files into out with @BINDIR@ replaced, as `make
// install` does.
func render(t *testing.T, dir, out, bin string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in %s: %v", dir, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("@BINDIR@"), []byte(bin))
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(f))
	}
	return names
}

// TestUnitsVerify runs systemd-analyze verify on every unit against the
// built binaries; any line on stderr (an unknown key only warns) fails.
func TestUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze not found (scripts/deps.d/systemd.txt): %v", err)
	}
	bin := binDir(t)
	dir := t.TempDir()
	units := render(t, "units", dir, bin)
	for _, u := range units {
		t.Run(u, func(t *testing.T) {
			cmd := exec.Command("systemd-analyze", "verify", "--man=no", u)
			cmd.Dir = dir
			// The units' own directory first, so their references to each
			// other resolve; then the machine's (dbus.service, targets).
			cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":", "SYSTEMD_LOG_COLOR=0")
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			err := cmd.Run()
			if err != nil || stderr.Len() > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", u, err, stderr.String())
			}
		})
	}
	t.Run("security", func(t *testing.T) {
		out, err := exec.Command("systemd-analyze", "security", "--offline=true", filepath.Join(dir, "upgraded.service")).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		m := regexp.MustCompile(`Overall exposure level for upgraded.service: ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level in:\n%s", out)
		}
		t.Logf("exposure %s", m[1])
	})
}

// TestActivationFiles: each D-Bus activation file names its bus name, the
// binary, and a SystemdService that the matching unit provides (Alias=),
// and the names match the policy files.
func TestActivationFiles(t *testing.T) {
	for _, tc := range []struct{ file, name, exec, unit string }{
		{"org.laptop.Upgrade1.service", "org.laptop.Upgrade1", "@BINDIR@/upgraded", "upgraded.service"},
		{"org.laptop.Security1.service", "org.laptop.Security1", "@BINDIR@/securityd", "securityd.service"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("dbus-services", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			kv := map[string]string{}
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
					kv[k] = v
				}
			}
			if kv["Name"] != tc.name || kv["Exec"] != tc.exec || kv["User"] != "root" {
				t.Errorf("got %v", kv)
			}
			u, err := os.ReadFile(filepath.Join("units", tc.unit))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(u), "Alias="+kv["SystemdService"]+"\n") || !strings.Contains(string(u), "BusName="+tc.name+"\n") {
				t.Errorf("%s lacks Alias=%s or BusName=%s", tc.unit, kv["SystemdService"], tc.name)
			}
			if _, err := os.Stat(filepath.Join("dbus", tc.name+".conf")); err != nil {
				t.Errorf("no policy file: %v", err)
			}
		})
	}
}
