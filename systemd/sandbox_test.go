package systemd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo/sigkey"
)

// mountMode is what systemd makes of a path, in its order of priority
// (src/core/namespace.c: of two entries for one path the lower mode wins).
type mountMode int

const (
	inaccessible mountMode = iota
	privateTmp
	readOnly
	readWrite
)

type mountEntry struct {
	path   string
	mode   mountMode
	ignore bool // "-": a missing path is skipped
}

// unitSandbox reads the file-system sandbox of a unit's [Service] section
// and its ExecStart= arguments (less the binary).
func unitSandbox(t *testing.T, path string) ([]mountEntry, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		ms   []mountEntry
		args []string
	)
	add := func(mode mountMode, v string) {
		for _, p := range strings.Fields(v) {
			e := mountEntry{mode: mode}
			if strings.HasPrefix(p, "-") {
				e.ignore, p = true, p[1:]
			}
			e.path = filepath.Clean(p)
			ms = append(ms, e)
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "ExecStart":
			args = strings.Fields(v)[1:]
		case "ProtectSystem":
			switch v {
			case "strict":
				add(readOnly, "/")
			case "full":
				add(readOnly, "-/usr -/boot -/efi -/etc")
			case "yes", "true":
				add(readOnly, "-/usr -/boot -/efi")
			}
		case "ReadWritePaths":
			add(readWrite, v)
		case "ReadOnlyPaths":
			add(readOnly, v)
		case "InaccessiblePaths":
			add(inaccessible, v)
		case "StateDirectory": // made writable like ReadWritePaths=
			for _, d := range strings.Fields(v) {
				add(readWrite, "/var/lib/"+d)
			}
		case "ProtectHome":
			if v == "yes" || v == "true" {
				add(inaccessible, "-/home -/root -/run/user")
			}
		case "PrivateTmp":
			if v == "yes" || v == "true" {
				add(privateTmp, "-/tmp -/var/tmp")
			}
		case "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem", "RootDirectory", "RootImage":
			t.Fatalf("%s: %s= is not replicated by this test; teach unitSandbox", path, k)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// Prefixes first; of equal paths the higher priority only.
	sort.SliceStable(ms, func(i, j int) bool {
		if ms[i].path != ms[j].path {
			return ms[i].path < ms[j].path
		}
		return ms[i].mode < ms[j].mode
	})
	var out []mountEntry
	for _, m := range ms {
		if len(out) > 0 && out[len(out)-1].path == m.path {
			continue
		}
		out = append(out, m)
	}
	return out, args
}

// mountScript is a shell script that builds, under root, the mounts
// systemd builds under / for entries (apply_one_mount, then the read-only
// pass): every read-only or read-write path that is not yet a mount point
// becomes a bind mount of itself, and that is what splits the slots.
func mountScript(root string, ms []mountEntry) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, m := range ms {
		p := filepath.Join(root, m.path)
		if m.ignore {
			fmt.Fprintf(&b, "if [ -e %q ]; then\n", p)
		}
		switch m.mode {
		case inaccessible:
			fmt.Fprintf(&b, "mount -t tmpfs -o ro,mode=000 inaccessible %q\n", p)
		case privateTmp:
			fmt.Fprintf(&b, "mount -t tmpfs -o mode=1777 private %q\n", p)
		default:
			fmt.Fprintf(&b, "mountpoint -q %q || mount --bind %q %q\n", p, p, p)
		}
		if m.ignore {
			b.WriteString("fi\n")
		}
	}
	for _, m := range ms {
		if m.mode == readOnly {
			p := filepath.Join(root, m.path)
			fmt.Fprintf(&b, "if mountpoint -q %q; then mount -o remount,bind,ro %q; fi\n", p, p)
		}
	}
	return b.String()
}

// TestUnitSandboxUpgrade runs the real `upgraded --once`, with the
// ExecStart= arguments of the unit, in a private mount namespace whose
// mounts are those the unit's sandbox makes (replicated under the root
// prefix), on a provisioned root: the shipped unit must upgrade; the unit
// as it was (ReadWritePaths=-/a -/b) splits the slots onto two mounts and
// the clone fails with EXDEV (issue 14).
func TestUnitSandboxUpgrade(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount namespaces)")
	}
	for _, tool := range []string{"unshare", "mount", "mountpoint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: %v", tool, err)
		}
	}
	bin := binDir(t)
	r := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(r.Dir)))
	keys := t.TempDir()
	for id, k := range r.Keys {
		if err := os.WriteFile(filepath.Join(keys, id+".pub"), sigkey.MarshalPublic(k), 0644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, unit string
		wantErr    string // "" = success
	}{
		{"shipped unit", "units/upgraded.service", ""},
		{"before: ReadWritePaths=-/a -/b", "testdata/upgraded-before.service", "invalid cross-device link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, cfg := r.Provision(t, url, 1)
			ms, args := unitSandbox(t, tc.unit)
			args = append(args, "--once", "--root", root, "--keys", keys, "--mirror", url, "--network-wait", "10s")
			script := mountScript(root, ms) + "exec " + shellQuote(append([]string{filepath.Join(bin, "upgraded")}, args...)) + "\n"
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			defer func() {
				if t.Failed() {
					t.Logf("mounts and command:\n%s\noutput:\n%s", script, out.String())
				}
			}()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(out.String(), tc.wantErr) {
					t.Fatalf("got %v, want a failure with %q", err, tc.wantErr)
				}
				if !strings.Contains(out.String(), "not on one mount") {
					t.Errorf("no start-up warning that the slots are on different mounts")
				}
				return
			}
			if err != nil {
				t.Fatalf("upgraded --once under the unit's mounts: %v", err)
			}
			if !strings.Contains(out.String(), "slot b holds version 2") {
				t.Errorf("no \"slot b holds version 2\" in the output")
			}
			if v, err := os.ReadFile(cfg.Root.SlotVersionFile(layout.SlotB)); err != nil || string(v) != "2\n" {
				t.Errorf("slot b's version record: %q, %v", v, err)
			}
		})
	}
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
