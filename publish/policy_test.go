package publish_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// debootstrapTree is the sample tree with what a debootstrap'd root holds
// in /dev: character devices and a fifo.
func debootstrapTree(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (mknod): run the publish tests as root, as make test does")
	}
	tree := filepath.Join(t.TempDir(), "tree")
	if err := testtree.Build(tree, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(tree, "dev"), 0755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		name string
		mode uint32
		dev  int
	}{
		{"console", unix.S_IFCHR | 0600, int(unix.Mkdev(5, 1))},
		{"null", unix.S_IFCHR | 0666, int(unix.Mkdev(1, 3))},
		{"initctl", unix.S_IFIFO | 0600, 0},
	} {
		if err := unix.Mknod(filepath.Join(tree, "dev", n.name), n.mode, n.dev); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// provision builds a root from the repository at dir through a file://
// mirror, with the clients' default policy (engine.Config.Policy nil).
func provision(t *testing.T, dir string, k repo.PrivateKey) (string, error) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	lr, err := layout.New(root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &engine.Config{Root: lr, Mirrors: []string{"file://" + dir}, Channel: "stable", Keys: repo.Keyring{k.ID: k.Public()}, Logf: t.Logf}
	_, err = engine.Provision(context.Background(), cfg, 0)
	return root, err
}

// A tree with device nodes is refused by default, naming every node; with
// StripForbidden it publishes without them and provisions with the
// clients' default policy; published with AllowDevices, the same default
// policy refuses it at provision time, which is what add now prevents.
func TestAddClientPolicy(t *testing.T) {
	tree := debootstrapTree(t)
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	newRepo := func() string { return filepath.Join(t.TempDir(), "repo") }
	opts := func(dir string) publish.Options {
		return publish.Options{Repo: dir, Key: k, Channel: "stable", Logf: t.Logf}
	}

	t.Run("refused", func(t *testing.T) {
		dir := newRepo()
		_, err := publish.Add(context.Background(), tree, opts(dir))
		if !errors.Is(err, errdefs.ErrPolicy) {
			t.Fatalf("Add: got %v, want a policy error", err)
		}
		for _, want := range []string{"3 entries that clients refuse", "--strip-forbidden", "\n  dev/console: char device", "\n  dev/initctl: fifo", "\n  dev/null: char device"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, repo.TimestampPath)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused add wrote a timestamp: %v", err)
		}
	})

	t.Run("stripped", func(t *testing.T) {
		dir := newRepo()
		o := opts(dir)
		o.StripForbidden = true
		res, err := publish.Add(context.Background(), tree, o)
		if err != nil {
			t.Fatal(err)
		}
		root, err := provision(t, dir, k)
		if err != nil {
			t.Fatalf("provision of the stripped version: %v", err)
		}
		slot := filepath.Join(root, "a")
		if st, err := os.Stat(filepath.Join(slot, "dev")); err != nil || !st.IsDir() {
			t.Errorf("dev/ should stay as an empty directory: %v", err)
		}
		if ents, _ := os.ReadDir(filepath.Join(slot, "dev")); len(ents) != 0 {
			t.Errorf("dev/ holds %d entries, want none", len(ents))
		}
		if _, err := os.Stat(filepath.Join(slot, "etc/os-release")); err != nil {
			t.Errorf("the rest of the tree: %v", err)
		}
		t.Logf("version %d, %d entries", res.Version, res.Entries)
	})

	t.Run("allow-devices", func(t *testing.T) {
		dir := newRepo()
		o := opts(dir)
		o.AllowDevices = true
		if _, err := publish.Add(context.Background(), tree, o); err != nil {
			t.Fatal(err)
		}
		_, err := provision(t, dir, k)
		if !errors.Is(err, errdefs.ErrPolicy) || !strings.Contains(err.Error(), "dev/console: char device") {
			t.Fatalf("provision with the default policy: got %v, want dev/console forbidden by policy", err)
		}
	})
}

// Resign changes serial and dates only: a hardware-specific index stays
// one when the timer re-signs it without --hardware.
func TestResignKeepsHardware(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	if err := testtree.Build(tree, 1); err != nil {
		t.Fatal(err)
	}
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := publish.Add(context.Background(), tree, publish.Options{Repo: dir, Key: k, Channel: "stable", Hardware: "xo-1.75"}); err != nil {
		t.Fatal(err)
	}
	_, before, err := publish.LoadIndex(publish.Options{Repo: dir, Key: k, Channel: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	if err := publish.Resign(publish.Options{Repo: dir, Key: k, Channel: "stable"}); err != nil {
		t.Fatal(err)
	}
	_, after, err := publish.LoadIndex(publish.Options{Repo: dir, Key: k, Channel: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	if after.Hardware != "xo-1.75" || after.Serial != before.Serial+1 || len(after.Versions) != 1 {
		t.Errorf("after resign: hardware %q serial %d (was %d), %d versions", after.Hardware, after.Serial, before.Serial, len(after.Versions))
	}
}
