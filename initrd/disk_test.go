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
	kernels map[layout.Slot]slotKernel
}

// slotKernel is what a slot carries of its own kernel (docs/boot.md): the
// kernel from a tree as fetch-kernel.sh leaves it, an initrd image, and
// the tree's NLS modules for testinit to load.
type slotKernel struct {
	dir    string // boot/vmlinuz-RELEASE, lib/modules/RELEASE, version
	initrd string // image file; its bytes go to boot/initrd.img-RELEASE
}

// install copies the kernel into slotDir as boot/vmlinuz-RELEASE behind the
// boot/vmlinuz link, the same for the initrd, and the NLS modules.
func (k slotKernel) install(t *testing.T, slotDir string) {
	t.Helper()
	v, err := os.ReadFile(filepath.Join(k.dir, "version"))
	must(t, err)
	rel := strings.TrimSpace(string(v))
	boot := filepath.Join(slotDir, "boot")
	must(t, os.MkdirAll(boot, 0o755))
	copyFile(t, filepath.Join(k.dir, "boot", "vmlinuz-"+rel), filepath.Join(boot, "vmlinuz-"+rel))
	copyFile(t, k.initrd, filepath.Join(boot, "initrd.img-"+rel))
	must(t, os.Symlink("vmlinuz-"+rel, filepath.Join(boot, "vmlinuz")))
	must(t, os.Symlink("initrd.img-"+rel, filepath.Join(boot, "initrd.img")))
	mods, err := filepath.Glob(filepath.Join(k.dir, "lib/modules", rel, "kernel/fs/nls/nls_iso8859-1.ko*"))
	if err != nil || len(mods) == 0 {
		t.Fatalf("no nls_iso8859-1 module in %s (%v)", k.dir, err)
	}
	nls := filepath.Join(slotDir, "lib/modules", rel, "kernel/fs/nls")
	must(t, os.MkdirAll(nls, 0o755))
	copyFile(t, mods[0], filepath.Join(nls, filepath.Base(mods[0])))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o644))
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
		if k, ok := d.kernels[s]; ok {
			k.install(t, root.Slot(s))
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
	size := "32M"
	if len(d.kernels) > 0 {
		size = "96M"
	}
	run(t, "mkfs.ext4", "-q", "-F", "-L", d.label, "-d", tree, img, size)
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

// setPointer replaces the boot pointer in the image, as the security
// service would between boots (MarkGood, Rollback).
func setPointer(t *testing.T, img string, p bootptr.Pointer) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "bootptr")
	must(t, os.WriteFile(tmp, p.Encode(), 0o644))
	script := filepath.Join(t.TempDir(), "debugfs.cmd")
	must(t, os.WriteFile(script, []byte("rm /var/lib/securityd/bootptr\nwrite "+tmp+" /var/lib/securityd/bootptr\n"), 0o644))
	run(t, "debugfs", "-w", "-f", script, img)
	if got, err := imagePointer(t, img); err != nil || got != p {
		t.Fatalf("setPointer: reads back %+v, %v", got, err)
	}
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
