package initrd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/layout"
)

// The VM tests boot the real image (make initrd) on Debian's cloud kernel
// under qemu (TCG) against an ext4 disk holding both slots, each with
// testinit as its /sbin/init. They are judged by console lines, never by
// qemu's exit status (panic=-1 and -no-reboot make every ending exit 0).
//
// `make vmtest` sets UPGRADE_VM=1 with the kernel and image paths; then a
// missing piece is a failure. Plain `go test ./...` skips them. The
// kernel-switch tests (vm_kernel_test.go) also boot a second kernel tree.

const vmLabel = "xo-root"

type vm struct {
	kernel, initrd, initBin string
}

func needVM(t *testing.T) *vm {
	t.Helper()
	kernel, img := os.Getenv("UPGRADE_VM_KERNEL"), os.Getenv("UPGRADE_VM_INITRD")
	if os.Getenv("UPGRADE_VM") == "" {
		t.Skip("VM test: run `make vmtest` (needs the kernel fetched into build/kernel and qemu)")
	}
	for _, p := range []string{kernel, img} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("UPGRADE_VM set but %v (make vmtest builds both)", err)
		}
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (make deps installs it)", tool, err)
		}
	}
	return &vm{kernel: kernel, initrd: img, initBin: buildTestInit(t)}
}

var testInit struct {
	once sync.Once
	path string
	err  error
}

// buildTestInit builds the static slot init once per test binary.
func buildTestInit(t *testing.T) string {
	testInit.once.Do(func() {
		dir, err := os.MkdirTemp("", "testinit")
		if err != nil {
			testInit.err = err
			return
		}
		testInit.path = filepath.Join(dir, "init")
		cmd := exec.Command("go", "build", "-trimpath", "-o", testInit.path, "./internal/testinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			testInit.err = fmt.Errorf("build testinit: %v\n%s", err, out)
		}
	})
	if testInit.err != nil {
		t.Fatal(testInit.err)
	}
	return testInit.path
}

// boot runs one qemu boot with a hard timeout and returns the console.
func (v *vm) boot(t *testing.T, img, args string) string {
	t.Helper()
	return v.bootWith(t, img, args, bootOpts{})
}

// bootOpts changes what the firmware loads (default: the vm's kernel and
// image) and, with reboot, lets a reset restart the machine (qemu exits
// only when the slot's init powers off): the kernel-switch fallback goes
// through panics and firmware reboots in one run.
type bootOpts struct {
	kernel, initrd string
	reboot         bool
	timeout        time.Duration
}

func (v *vm) bootWith(t *testing.T, img, args string, o bootOpts) string {
	t.Helper()
	if o.kernel == "" {
		o.kernel, o.initrd = v.kernel, v.initrd
	}
	if o.timeout == 0 {
		o.timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	qargs := []string{"-nographic", "-m", "512", "-nic", "none",
		"-kernel", o.kernel, "-initrd", o.initrd,
		"-drive", "file=" + img + ",format=raw,if=virtio",
		"-append", "console=ttyS0 panic=-1 quiet " + args}
	if !o.reboot {
		qargs = append(qargs, "-no-reboot")
	}
	if n := os.Getenv("UPGRADE_VM_SMP"); n != "" { // for measuring the parallel module loader
		qargs = append(qargs, "-smp", n)
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", qargs...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("qemu %q: no power-off or reboot within %v (hung PID 1?)\n%s", args, o.timeout, consoleLines(out.String()))
	}
	t.Logf("boot %q: %.1f s, qemu %v\n%s", args, time.Since(start).Seconds(), err, consoleLines(out.String()))
	return out.String()
}

// consoleLines keeps the lines that matter from a console full of escapes.
func consoleLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "upgrade-init:"); i >= 0 {
			keep = append(keep, strings.TrimSpace(l[i:]))
		} else if i := strings.Index(l, "slot-init:"); i >= 0 {
			keep = append(keep, strings.TrimSpace(l[i:]))
		} else if strings.Contains(l, "Kernel panic") || strings.Contains(l, "reboot:") || strings.Contains(l, "Failed to execute") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "\n")
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("console lacks %q; got:\n%s", l, consoleLines(out))
		}
	}
}

func wantOnDisk(t *testing.T, img string, want bootptr.Pointer) {
	t.Helper()
	got, err := imagePointer(t, img)
	if err != nil || got != want {
		t.Errorf("pointer on disk = %+v, %v; want %+v", got, err, want)
	}
}

func (v *vm) disk(t *testing.T, d disk) string {
	d.label, d.initBin = vmLabel, v.initBin
	if d.slots == nil {
		d.slots = []layout.Slot{"a", "b"}
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	d.build(t, img)
	return img
}

const rootArg = "root=LABEL=" + vmLabel + " rootwait"

func TestVM(t *testing.T) {
	v := needVM(t)
	normal := bootptr.Pointer{Next: "a", Good: "a", Seq: 4}

	t.Run("normal", func(t *testing.T) {
		t.Parallel()
		img := v.disk(t, disk{current: "a", ptr: &normal})
		ptrID := identity(t, img, "/var/lib/securityd/bootptr")
		out := v.boot(t, img, rootArg)
		wantLines(t, out, "upgrade-init: booting slot a (normal a)", "upgrade-init: ready in ",
			"slot-init: pid=1 slot=a current=a exe=/a/sbin/init", "slot-init: pointer next=a good=a trial=false tries=0 failed= seq=4",
			"/proc:proc /sys:sysfs /dev:devtmpfs /run:tmpfs", "slot-init: root rw", "slot-init: powering off")
		if strings.Contains(out, "/newroot visible") {
			t.Error("initramfs not switched away")
		}
		if got := identity(t, img, "/var/lib/securityd/bootptr"); got != ptrID {
			t.Errorf("a normal boot rewrote the pointer")
		}
	})

	t.Run("override", func(t *testing.T) {
		t.Parallel()
		img := v.disk(t, disk{current: "a", ptr: &normal})
		out := v.boot(t, img, rootArg+" upgrade.slot=b")
		wantLines(t, out, "upgrade-init: booting slot b (override upgrade.slot=b (this boot only))",
			"slot-init: pid=1 slot=b current=b exe=/b/sbin/init")
		wantOnDisk(t, img, normal) // this boot only
	})

	t.Run("trial-then-fallback", func(t *testing.T) {
		t.Parallel()
		img := v.disk(t, disk{current: "a", ptr: &bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 7}})
		// Two boots of b, each consuming a try; b never says boot-complete.
		// The first with "ro": a read-only root made writable for the try.
		out := v.boot(t, img, rootArg+" ro")
		wantLines(t, out, "upgrade-init: booting slot b (trial b: 1 tries left)", "slot-init: pid=1 slot=b current=b",
			"slot-init: root ro")
		wantOnDisk(t, img, bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 1, Seq: 8})
		out = v.boot(t, img, rootArg)
		wantLines(t, out, "upgrade-init: booting slot b (trial b: 0 tries left)", "slot-init: pid=1 slot=b current=b")
		// Third boot: out of tries, back to a without a person.
		out = v.boot(t, img, rootArg)
		wantLines(t, out, "upgrade-init: booting slot a (trial b failed (no tries left): falling back to good a)",
			"slot-init: pid=1 slot=a current=a", "slot-init: pointer next=a good=a trial=false tries=0 failed=b seq=10")
		wantOnDisk(t, img, bootptr.Pointer{Next: "a", Good: "a", Failed: "b", Seq: 10})
	})

	t.Run("corrupt-pointer", func(t *testing.T) {
		t.Parallel()
		bad := bootptr.Pointer{Next: "b", Good: "b", Seq: 3}.Encode()
		bad[len(bad)-3] ^= 1 // break the crc
		img := v.disk(t, disk{current: "b", raw: bad})
		out := v.boot(t, img, rootArg)
		// b ran last (current names it); a may be half rebuilt.
		wantLines(t, out, "upgrade-init: booting slot b (boot pointer unusable", "corrupt data", "which current names", "writing a fresh pointer",
			"slot-init: pid=1 slot=b current=b")
		wantOnDisk(t, img, bootptr.Pointer{Next: "b", Good: "b", Seq: 1})
	})

	t.Run("missing-root", func(t *testing.T) {
		t.Parallel()
		img := v.disk(t, disk{current: "a", ptr: &normal})
		out := v.boot(t, img, "root=LABEL=no-such-disk rootdelay=1")
		wantLines(t, out, "upgrade-init: FATAL: step find-root: no block device with LABEL=no-such-disk",
			"upgrade-init: rebooting in 5 s", "reboot: Restarting system")
		if strings.Contains(out, "Kernel panic") || strings.Contains(out, "slot-init:") {
			t.Error("want a clean reboot from PID 1, not a panic or a boot")
		}
	})
}
