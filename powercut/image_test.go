package powercut

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/internal/testtree"
)

const (
	rootLabel  = "xo-root"
	mediaLabel = "xo-media"
	// target is the version the guest upgrades to.
	target = 2
)

// world is what every boot of the test shares: a pristine root disk image
// (slot a at version 1, provisioned by the real publisher) and a read-only
// "USB stick" with the repository (versions 1 and 2), bin/upgraded and
// bin/upgrade-worker.
type world struct {
	kernel, initrd string
	rootImg        string // pristine; each cut boots a copy
	mediaImg       string // opened read-only by every boot
}

// binary returns bin/<name>: from $UPGRADE_BIN (make sets it), else built
// once (static, as make build does) into a temp dir.
func binary(t testing.TB, name string) string {
	t.Helper()
	if d := os.Getenv("UPGRADE_BIN"); d != "" {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("UPGRADE_BIN set but %v (make build)", err)
		}
		return p
	}
	return goBuild(t, "../cmd/"+name)
}

var built struct {
	sync.Mutex
	dir string
}

// goBuild builds a static binary of pkg once per test binary.
func goBuild(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if built.dir == "" {
		d, err := os.MkdirTemp("", "powercut-bin-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir = d
	}
	out := filepath.Join(built.dir, filepath.Base(pkg))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	args := append([]string{"build", "-trimpath", "-o", out}, ldflags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newWorld publishes versions 1 and 2 of the sample tree, each carrying the
// guest as /sbin/init and the trusted key, then provisions slot a from that
// repository with `upgrade-publish provision` and turns the root and the
// media (repository + the project's static upgraded) into ext4 images.
func newWorld(t *testing.T, kernel, initrd string) *world {
	t.Helper()
	dir := t.TempDir()
	publisher := binary(t, "upgrade-publish")
	upgraded := binary(t, "upgraded")
	worker := binary(t, "upgrade-worker")
	guest := goBuild(t, "./internal/guest", "-ldflags=-s -w")

	keys := filepath.Join(dir, "keys")
	run(t, publisher, "keygen", "--out", keys, "--name", "powercut")
	pub := filepath.Join(dir, "pub")
	must(t, os.MkdirAll(pub, 0o755))
	copyFile(t, filepath.Join(keys, "powercut.pub"), filepath.Join(pub, "powercut.pub"), 0o644)

	media := filepath.Join(dir, "media")
	repoDir := filepath.Join(media, "repo")
	copyFile(t, upgraded, filepath.Join(media, "bin/upgraded"), 0o755)
	copyFile(t, worker, filepath.Join(media, "bin/upgrade-worker"), 0o755)
	for v := 1; v <= target; v++ {
		tree := filepath.Join(dir, "tree", fmt.Sprint(v))
		must(t, testtree.Build(tree, v))
		// sbin -> usr/bin in the sample tree, so this is /sbin/init.
		copyFile(t, guest, filepath.Join(tree, "usr/bin/init"), 0o755)
		must(t, os.MkdirAll(filepath.Join(tree, "etc/upgrade/keys"), 0o755))
		copyFile(t, filepath.Join(pub, "powercut.pub"), filepath.Join(tree, "etc/upgrade/keys/powercut.pub"), 0o644)
		run(t, publisher, "add", "--repo", repoDir, "--key", filepath.Join(keys, "powercut.key"), tree)
	}

	root := filepath.Join(dir, "root")
	run(t, publisher, "provision", "--root", root, "--mirror", "file://"+repoDir+"/", "--keys", pub, "--version", "1")
	// Mount points the initrd moves its filesystems onto.
	for _, d := range []string{"dev", "proc", "sys", "run"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	w := &world{kernel: kernel, initrd: initrd,
		rootImg: filepath.Join(dir, "root.img"), mediaImg: filepath.Join(dir, "media.img")}
	// Room for both slots, staging and the journal; sparse on the host.
	run(t, "mkfs.ext4", "-q", "-F", "-L", rootLabel, "-d", root, w.rootImg, "96M")
	run(t, "mkfs.ext4", "-q", "-F", "-L", mediaLabel, "-d", media, w.mediaImg, "64M")
	// The trees, the repository and the root live on in the images only.
	for _, d := range []string{root, media, filepath.Join(dir, "tree")} {
		must(t, os.RemoveAll(d))
	}
	return w
}

// disk returns a fresh copy of the pristine root image for one cut.
func (w *world) disk(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "root.img")
	run(t, "cp", "--sparse=always", w.rootImg, img)
	return img
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.MkdirAll(filepath.Dir(to), 0o755))
	must(t, os.WriteFile(to, b, mode))
	must(t, os.Chmod(to, mode))
	// Deployed files carry mtime 1 s (see docs/architecture.md).
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, to, []unix.Timespec{{Sec: 1}, {Sec: 1}}, unix.AT_SYMLINK_NOFOLLOW))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
