package security_test

import (
	"context"
	"encoding/binary"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/initrd"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/security"
)

// TestKernelFilesVerified: a version that carries its own kernel, modules
// and initrd (docs/boot.md, Kernels) is published, fetched and verified
// like any other tree: the files arrive where /init looks for them, and a
// slot whose kernel was altered after the fetch is refused, the pointer
// left as it was.
func TestKernelFilesVerified(t *testing.T) {
	const rel = "6.12.118+deb12-cloud-amd64"
	rp := testrepo.New(t, 1)
	tree := filepath.Join(t.TempDir(), "v2")
	if out, err := exec.Command("cp", "-a", rp.Trees[0], tree).CombinedOutput(); err != nil {
		t.Fatalf("copy tree: %v %s", err, out)
	}
	kernel := make([]byte, 64<<10)
	copy(kernel[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(kernel[0x20e:], 0x300)
	copy(kernel[0x500:], rel+" (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.12.118-1~deb12u1\x00")
	for p, data := range map[string][]byte{
		"boot/vmlinuz-" + rel:    kernel,
		"boot/initrd.img-" + rel: []byte("initramfs of " + rel),
		"lib/modules/" + rel + "/kernel/fs/nls/nls_iso8859-1.ko.xz": []byte("module"),
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(tree, p), data, 0o644))
	}
	must(t, os.Symlink("vmlinuz-"+rel, filepath.Join(tree, "boot/vmlinuz")))
	must(t, os.Symlink("initrd.img-"+rel, filepath.Join(tree, "boot/initrd.img")))
	rp.Publish(t, tree)

	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	if _, err := engine.Upgrade(context.Background(), cfg, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	r, b := cfg.Root, layout.SlotB
	boot(t, r, layout.SlotA)
	svc := &security.Service{Root: r, Keys: rp.Keys, Logf: t.Logf}
	if _, err := svc.Activate(context.Background(), b, 3); err != nil {
		t.Fatalf("Activate the version carrying a kernel: %v", err)
	}
	ks, err := initrd.PlanKernel(r.Slot(b), b, initrd.Uname{Release: "6.1.0-57-cloud-amd64", Version: "#1"}, "root=LABEL=x")
	if err != nil || ks == nil || ks.Release != rel || ks.Initrd != "boot/initrd.img" {
		t.Fatalf("PlanKernel on the fetched slot = %+v, %v; want a switch to %s", ks, err, rel)
	}

	before, err := bootptr.Read(r.BootPointer())
	must(t, err)
	p := filepath.Join(r.Slot(b), "boot", "vmlinuz-"+rel)
	must(t, os.Remove(p)) // a new inode: never write through a link the slots may share
	kernel[0x600] ^= 1
	must(t, os.WriteFile(p, kernel, 0o644))
	_, err = svc.Activate(context.Background(), b, 3)
	if err == nil || !strings.Contains(err.Error(), "boot/vmlinuz-"+rel) {
		t.Errorf("Activate with an altered kernel: %v, want a refusal naming it", err)
	}
	if got, _ := bootptr.Read(r.BootPointer()); got != before {
		t.Errorf("a refused activation wrote the pointer: %+v, was %+v", got, before)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
