package confine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/confine"
	"laptop.org/upgrade/confine/internal/probe"
)

// TestConfinementVM runs the probe of TestConfinement on Debian's cloud
// kernel (Landlock ABI 2 on 6.1: no truncate right, threads confined
// through psx rather than the kernel's TSYNC) booted through the
// project's initrd under qemu, from a static build as the daemon ships
// (CGO_ENABLED=0). `make confine-vmtest` sets UPGRADE_VM=1 with the
// kernel and initrd; then a missing piece is a failure.
func TestConfinementVM(t *testing.T) {
	kernel, initrd := os.Getenv("UPGRADE_VM_KERNEL"), os.Getenv("UPGRADE_VM_INITRD")
	if os.Getenv("UPGRADE_VM") == "" {
		t.Skip("VM test: run `make confine-vmtest` (needs the kernel fetched into build/kernel, the initrd and qemu)")
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("UPGRADE_VM set but %v", err)
		}
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (make deps installs it)", tool, err)
		}
	}
	// The disk: slot a whose init is the guest, as the initrd expects it.
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"a/sbin", "b", "dev", "proc", "sys", "run", "var/lib", "probe"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(tree, "a/sbin/init"), "./internal/vmguest")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the guest: %v\n%s", err, out)
	}
	for target, link := range map[string]string{"a": "current", "current/sbin": "sbin"} {
		if err := os.Symlink(target, filepath.Join(tree, link)); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "disk.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "confine-root", "-d", tree, img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-nographic", "-no-reboot", "-m", "512", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd, "-drive", "file="+img+",format=raw,if=virtio",
		"-append", "console=ttyS0 panic=-1 quiet root=LABEL=confine-root rootwait")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run() // judged by the console: with panic=-1 qemu exits 0 either way
	if ctx.Err() != nil {
		t.Fatalf("qemu: no power-off within 3 minutes\n%s", out.String())
	}
	console := out.String()
	m := regexp.MustCompile(`confine-guest: abi=(\d+)`).FindStringSubmatch(console)
	if m == nil {
		t.Fatalf("no confine-guest line on the console:\n%s", console)
	}
	abi, _ := strconv.Atoi(m[1])
	if abi < confine.MinABI {
		t.Fatalf("the guest kernel offers Landlock ABI %d; the confinement needs %d\n%s", abi, confine.MinABI, console)
	}
	r := regexp.MustCompile(`confine-guest: result=(\{.*\})`).FindStringSubmatch(console)
	if r == nil {
		t.Fatalf("no probe result on the console:\n%s", console)
	}
	var got probe.Outcome
	if err := json.Unmarshal([]byte(r[1]), &got); err != nil {
		t.Fatalf("probe result: %v\n%s", err, r[1])
	}
	if diff := cmp.Diff(probe.Want(abi), got); diff != "" {
		t.Errorf("operations under confinement in the guest, Landlock ABI %d (-want +got):\n%s", abi, diff)
	}
	t.Logf("guest kernel: Landlock ABI %d, %d operations as expected\n%s", abi, len(got),
		regexp.MustCompile(`confine-guest: [^\r\n]*`).FindAllString(console, -1))
}
