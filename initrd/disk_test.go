package initrd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/layout"
)

// disk describes a test root filesystem: both slots (unless left out), the
// current link, and the boot pointer (nil: none; raw: these bytes instead).
type disk struct {
	label   string
	slots   []layout.Slot
	current layout.Slot
	ptr     *bootptr.Pointer
	raw     []byte
	initBin string // copied to <slot>/sbin/init when set
}

// build makes an ext4 image at img with mkfs.ext4 -d, laid out as the
// design says: R/a, R/b, R/current -> a, R/sbin -> current/sbin, the
// pointer at R/var/lib/securityd/bootptr.
func (d disk) build(t *testing.T, img string) {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	root := layout.Root{Dir: tree}
	for _, dir := range []string{"dev", "proc", "sys", "run", "var/lib"} {
		must(t, os.MkdirAll(filepath.Join(tree, dir), 0o755))
	}
	for _, s := range d.slots {
		must(t, os.MkdirAll(filepath.Join(root.Slot(s), "sbin"), 0o755))
		must(t, os.WriteFile(filepath.Join(root.Slot(s), "slot"), []byte(s+"\n"), 0o644))
		if d.initBin != "" {
			b, err := os.ReadFile(d.initBin)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(root.Slot(s), "sbin", "init"), b, 0o755))
		}
	}
	if d.current != "" {
		must(t, os.Symlink(string(d.current), root.Current()))
	}
	must(t, os.Symlink("current/sbin", filepath.Join(tree, "sbin")))
	if d.ptr != nil {
		must(t, bootptr.Write(root.BootPointer(), *d.ptr))
	}
	if d.raw != nil {
		must(t, os.MkdirAll(root.SecurityDir(), 0o755))
		must(t, os.WriteFile(root.BootPointer(), d.raw, 0o644))
	}
	run(t, "mkfs.ext4", "-q", "-F", "-L", d.label, "-d", tree, img, "32M")
}

// debugfs runs one debugfs request against an image (read-only).
func debugfs(t *testing.T, img, req string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", req, img).Output()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v", req, err)
	}
	return string(out)
}

// imagePointer reads the boot pointer back from the image.
func imagePointer(t *testing.T, img string) (bootptr.Pointer, error) {
	t.Helper()
	return bootptr.Decode([]byte(debugfs(t, img, "cat /var/lib/securityd/bootptr")))
}

// identity is what changes when a file is rewritten or replaced: its inode
// number and ctime. atime is left out (reading the pointer may touch it).
func identity(t *testing.T, img, path string) string {
	var keep []string
	for _, l := range strings.Split(debugfs(t, img, "stat "+path), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "Inode:") || strings.HasPrefix(l, "ctime:") || strings.HasPrefix(l, "mtime:") || strings.HasPrefix(l, "Fast link dest:") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
