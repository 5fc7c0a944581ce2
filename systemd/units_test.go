package systemd_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"laptop.org/upgrade/confine"
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
		// 2.7 with ProtectSystem=strict before the Landlock confinement
		// (docs/systemd.md), 2.9 without ProtectKernelModules=, which
		// masks the running slot's modules (modules stay unloadable: no
		// CAP_SYS_MODULE, @module denied). The sandbox must not get worse.
		if e, err := strconv.ParseFloat(string(m[1]), 64); err != nil || e > 2.9 {
			t.Errorf("exposure %s, want at most 2.9", m[1])
		}
	})
}

// TestUnitAllowsConfinement: the system calls of the daemon's Landlock
// confinement pass the unit's SystemCallFilter= (its groups expanded by
// systemd-analyze), else the confinement would fail with EPERM at start.
func TestUnitAllowsConfinement(t *testing.T) {
	u, err := os.ReadFile(filepath.Join("units", "upgraded.service"))
	if err != nil {
		t.Fatal(err)
	}
	allowed, denied := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(string(u), "\n") {
		v, ok := strings.CutPrefix(l, "SystemCallFilter=")
		if !ok {
			continue
		}
		set := allowed
		if v, ok = strings.CutPrefix(v, "~"); ok {
			set = denied
		}
		for _, f := range strings.Fields(v) {
			if !strings.HasPrefix(f, "@") {
				set[f] = true
				continue
			}
			out, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager", f).Output()
			if err != nil {
				t.Fatalf("systemd-analyze syscall-filter %s: %v", f, err)
			}
			for _, s := range strings.Fields(string(out)) {
				set[s] = true
			}
		}
	}
	for _, s := range confine.Syscalls {
		if !allowed[s] || denied[s] {
			t.Errorf("%s: allowed %v, denied %v by upgraded.service's SystemCallFilter=", s, allowed[s], denied[s])
		}
	}
	// Landlock governs truncate(2) only from ABI 3; the unit closes it.
	if !denied["truncate"] {
		t.Error("upgraded.service does not deny truncate(2)")
	}
	if !strings.Contains(string(u), "ExecStart=@BINDIR@/upgraded --confine=required\n") {
		t.Error("upgraded.service does not start the daemon with --confine=required")
	}
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
