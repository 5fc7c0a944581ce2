package export_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/internal/testbus"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// bins returns the directory of the built upgrade-publish and upgraded
// (make sets UPGRADE_BIN), building them when run by hand.
func bins(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("UPGRADE_BIN"); d != "" {
		return d
	}
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	cmd := exec.Command("go", "build", "-o", d+"/", "./cmd/upgrade-publish", "./cmd/upgraded", "./cmd/upgrade-worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return d
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	t.Logf("%s: %s", filepath.Base(name), out)
	return string(out)
}

// The school's path with the real binaries: the build server exports
// version 2 for laptops at 1; a laptop provisioned at 1 from the network
// upgrades in the foreground with the stick as its only mirror.
func TestExportCommand(t *testing.T) {
	bin := bins(t)
	r := testrepo.New(t, 2)
	keys := t.TempDir()
	if err := os.WriteFile(filepath.Join(keys, "release.pub"), sigkey.MarshalPublic(r.Key.Public()), 0644); err != nil {
		t.Fatal(err)
	}
	stick := filepath.Join(t.TempDir(), "stick")
	out := run(t, filepath.Join(bin, "upgrade-publish"), "export", "--repo", r.Dir, "--keys", keys, "--to", stick, "--from", "1")
	if !strings.Contains(out, "exported versions [2]") || strings.Contains(out, "note:") {
		t.Errorf("export said: %s", out)
	}
	root := filepath.Join(t.TempDir(), "root")
	run(t, filepath.Join(bin, "upgrade-publish"), "provision", "--root", root, "--mirror", "file://"+r.Dir, "--keys", keys, "--version", "1")
	if err := os.Remove(filepath.Join(r.Dir, repo.TimestampPath)); err != nil { // the network is gone
		t.Fatal(err)
	}
	run(t, filepath.Join(bin, "upgraded"), "--once", "--root", root, "--keys", keys, "--mirror", "file://"+stick)
	b, err := os.ReadFile(filepath.Join(root, "b/etc/os-release"))
	if err != nil || !strings.Contains(string(b), "VERSION_ID=2") {
		t.Errorf("slot b after the upgrade: %q %v", b, err)
	}

	// A list that is not one gets a clear error and exit status 1.
	cmd := exec.Command(filepath.Join(bin, "upgrade-publish"), "export", "--repo", r.Dir, "--keys", keys, "--to", stick, "--versions", "2,two")
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), `"two" is not a version number`) {
		t.Errorf("bad list: %v %s", err, msg)
	}
}
