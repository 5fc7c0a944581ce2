package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const release = "6.12.118+deb12-cloud-amd64"

// slotTree writes a slot with a kernel (a bzImage setup header naming
// release, behind the usual link), its modules.dep/modules.builtin and
// module files, and returns the slot's directory.
func slotTree(t *testing.T, dir string) string {
	t.Helper()
	kernel := make([]byte, 0x1000)
	copy(kernel[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(kernel[0x20e:], 0x300)
	copy(kernel[0x500:], release+" (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.12.118-1~deb12u1\x00")
	files := map[string][]byte{
		"boot/vmlinuz-" + release: kernel,
		"lib/modules/" + release + "/modules.dep": []byte("kernel/drivers/virtio/virtio_ring.ko:\n" +
			"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n" +
			"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"),
		"lib/modules/" + release + "/modules.builtin":                      []byte("kernel/drivers/virtio/virtio_pci.ko\n"),
		"lib/modules/" + release + "/kernel/drivers/virtio/virtio_ring.ko": []byte("ring module"),
		"lib/modules/" + release + "/kernel/drivers/virtio/virtio.ko":      []byte("virtio module"),
		"lib/modules/" + release + "/kernel/drivers/block/virtio_blk.ko":   []byte("blk module"),
		"init":        []byte("\x7fELF static init"),
		"modules.txt": []byte("virtio_pci # built in here\nvirtio_blk\n"),
	}
	for p, b := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), b, 0o644))
	}
	must(t, os.Symlink("vmlinuz-"+release, filepath.Join(dir, "boot/vmlinuz")))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSlotReproducible builds a slot's initrd twice from equal inputs that
// differ in everything the image must not depend on (file times, the order
// the files were created in, the directory, the time of day) and wants the
// same bytes; the image lands where /init looks for it.
func TestSlotReproducible(t *testing.T) {
	build1 := func(slot string) []byte {
		o := options{initBin: filepath.Join(slot, "init"), modList: filepath.Join(slot, "modules.txt"), slot: slot}
		if err := build(o); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(filepath.Join(slot, "boot/initrd.img")); err != nil || got != "initrd.img-"+release {
			t.Fatalf("boot/initrd.img -> %q, %v", got, err)
		}
		img, err := os.ReadFile(filepath.Join(slot, "boot/initrd.img-"+release))
		must(t, err)
		return img
	}
	first := build1(slotTree(t, t.TempDir()))
	second := filepath.Join(t.TempDir(), "other")
	slotTree(t, second)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	filepath.Walk(second, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, old, old) })
	time.Sleep(1100 * time.Millisecond) // a gzip or cpio header stamped with "now" would differ
	if again := build1(second); !bytes.Equal(first, again) {
		t.Fatalf("two builds of the same slot differ (%d vs %d bytes)", len(first), len(again))
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatalf("cpio(1): %v (make deps)", err)
	}
	cmd := exec.Command("sh", "-c", "gzip -dc | cpio -it --quiet")
	cmd.Stdin = bytes.NewReader(first)
	out, err := cmd.Output()
	must(t, err)
	want := []string{"dev", "dev/console", "proc", "sys", "run", "newroot", "lib", "lib/modules", "init",
		"lib/modules/virtio_ring.ko", "lib/modules/virtio.ko", "lib/modules/virtio_blk.ko", "lib/modules/initrd.order"}
	if diff := cmp.Diff(want, strings.Fields(string(out))); diff != "" {
		t.Errorf("image contents (-want +got):\n%s", diff)
	}
}

func TestSlotErrors(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "init"), []byte("x"), 0o755))
	if err := build(options{initBin: filepath.Join(dir, "init"), slot: dir}); err == nil || !strings.Contains(err.Error(), "has no kernel") {
		t.Errorf("slot without a kernel: %v", err)
	}
	must(t, os.MkdirAll(filepath.Join(dir, "boot"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "boot/vmlinuz"), []byte("not a kernel"), 0o644))
	if err := build(options{initBin: filepath.Join(dir, "init"), slot: dir}); err == nil || !strings.Contains(err.Error(), "not a bzImage") {
		t.Errorf("slot with a corrupt kernel: %v", err)
	}
}
