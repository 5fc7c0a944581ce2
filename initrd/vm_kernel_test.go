package initrd

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/initrd/internal/cpio"
	"laptop.org/upgrade/layout"
)

// kernelTree is a kernel as fetch-kernel.sh leaves it, with the image make
// builds for it.
type kernelTree struct {
	dir, initrd, release string
}

// needKernels returns the firmware's kernel (the vm's) and the second,
// newer one slot b carries (make vmtest fetches both: docs/boot.md).
func needKernels(t *testing.T, v *vm) (old, new kernelTree) {
	t.Helper()
	tree := func(dirEnv, initrd string) kernelTree {
		dir := os.Getenv(dirEnv)
		b, err := os.ReadFile(filepath.Join(dir, "version"))
		if err != nil {
			t.Fatalf("UPGRADE_VM set but %s: %v (make vmtest fetches it)", dirEnv, err)
		}
		if _, err := os.Stat(initrd); err != nil {
			t.Fatalf("UPGRADE_VM set but %v (make vmtest builds it)", err)
		}
		return kernelTree{dir: dir, initrd: initrd, release: strings.TrimSpace(string(b))}
	}
	old = tree("UPGRADE_VM_KERNEL_DIR", v.initrd)
	new = tree("UPGRADE_VM_KERNEL2_DIR", os.Getenv("UPGRADE_VM_INITRD2"))
	if old.release == new.release {
		t.Fatalf("both kernels are %s: the test needs two", old.release)
	}
	return old, new
}

func (k kernelTree) slot() slotKernel { return slotKernel{dir: k.dir, initrd: k.initrd} }

// brokenInitrd is an image whose /init cannot run (not an executable), so
// the kernel that unpacks it panics: "No working init found".
func brokenInitrd(t *testing.T) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.NewWriter(zw)
	for _, r := range []cpio.Record{
		{Name: "dev", Mode: cpio.TypeDir | 0o755},
		{Name: "dev/console", Mode: cpio.TypeChar | 0o600, RMajor: 5, RMin: 1},
		{Name: "init", Mode: cpio.TypeReg | 0o755, Data: []byte("not an executable\n")},
	} {
		must(t, w.Write(r))
	}
	must(t, w.Close())
	must(t, zw.Close())
	p := filepath.Join(t.TempDir(), "broken.cpio.gz")
	must(t, os.WriteFile(p, buf.Bytes(), 0o644))
	return p
}

// TestVMKernel: each slot boots its own kernel. The firmware (qemu
// -kernel) always loads the old kernel and its image, as a machine's
// firmware loads one fixed boot kernel; slot a carries that kernel, slot b
// the newer one.
func TestVMKernel(t *testing.T) {
	v := needVM(t)
	oldK, newK := needKernels(t, v)

	t.Run("upgrade-then-rollback", func(t *testing.T) {
		t.Parallel()
		img := v.disk(t, disk{current: "a", ptr: &bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 3, Seq: 7},
			kernels: map[layout.Slot]slotKernel{"a": oldK.slot(), "b": newK.slot()}})
		// The upgrade: b on trial. One try paid before the kexec, none after.
		out := v.bootWith(t, img, rootArg+" ro", bootOpts{timeout: 3 * time.Minute}) // two kernels boot
		wantLines(t, out, "upgrade-init: booting slot b (trial b: 2 tries left)",
			"upgrade-init: slot b carries kernel "+newK.release+", running "+oldK.release+": switching by kexec",
			"upgrade-init: kexec "+newK.release+" (",
			"upgrade-init: booting slot b (chosen before the kexec; upgrade.kexec on the command line)",
			"upgrade-init: running slot b's kernel "+newK.release,
			"slot-init: pid=1 slot=b current=b", "slot-init: kernel "+newK.release,
			"slot-init: module nls_iso8859-1.ko", "slot-init: root ro")
		wantModuleLoaded(t, out)
		wantOnDisk(t, img, bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 8})
		// The rollback (what securityd writes for upgradectl rollback):
		// back to a, and to the kernel a carries, with no kexec.
		setPointer(t, img, bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 8}.Rollback("a"))
		out = v.boot(t, img, rootArg)
		wantLines(t, out, "upgrade-init: booting slot a (normal a)", "slot-init: pid=1 slot=a current=a",
			"slot-init: kernel "+oldK.release)
		wantModuleLoaded(t, out)
		if strings.Contains(out, "switching by kexec") || strings.Contains(out, "upgrade-init: kexec") {
			t.Errorf("slot a carries the running kernel, yet the boot kexecd:\n%s", consoleLines(out))
		}
	})

	t.Run("panic-fallback", func(t *testing.T) {
		t.Parallel()
		bad := newK.slot()
		bad.initrd = brokenInitrd(t)
		img := v.disk(t, disk{current: "a", ptr: &bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 7},
			kernels: map[layout.Slot]slotKernel{"a": oldK.slot(), "b": bad}})
		// One qemu run: firmware kernel, kexec into b's kernel, panic,
		// reboot — twice — then the firmware kernel falls back to a.
		out := v.bootWith(t, img, rootArg, bootOpts{reboot: true, timeout: 6 * time.Minute})
		wantLines(t, out, "upgrade-init: booting slot b (trial b: 1 tries left)",
			"upgrade-init: booting slot b (trial b: 0 tries left)",
			"Kernel panic - not syncing: No working init found",
			"upgrade-init: booting slot a (trial b failed (no tries left): falling back to good a)",
			"slot-init: pid=1 slot=a current=a", "slot-init: kernel "+oldK.release,
			"slot-init: pointer next=a good=a trial=false tries=0 failed=b seq=10")
		if n := strings.Count(out, "switching by kexec"); n != 2 {
			t.Errorf("%d kexecs, want 2 (one per try)", n)
		}
		if n := strings.Count(out, "Kernel panic"); n != 2 {
			t.Errorf("%d panics, want 2 (one per try)", n)
		}
		wantOnDisk(t, img, bootptr.Pointer{Next: "a", Good: "a", Failed: "b", Seq: 10})
	})
}

func wantModuleLoaded(t *testing.T, out string) {
	t.Helper()
	if !strings.Contains(out, ".ko loaded") && !strings.Contains(out, ".ko.xz loaded") {
		t.Errorf("the slot's module did not load with its kernel:\n%s", consoleLines(out))
	}
}

// TestVMKernelBench measures kernel_switch_extra_ms: the extra boot time
// when the slot's kernel is not the one the firmware loaded. The same disk
// (slot b, normal, carrying the new kernel) boots either straight into the
// new kernel and its image (what a bootloader reading the pointer would
// do) or through the old kernel, which kexecs the new one; the difference
// of the medians of whole qemu runs (to the slot init's power-off) is the
// cost of the kexec route: one more kernel boot plus /init up to the kexec.
func TestVMKernelBench(t *testing.T) {
	if os.Getenv("UPGRADE_VM_BENCH") == "" {
		t.Skip("run by make bench-initrd")
	}
	v := needVM(t)
	oldK, newK := needKernels(t, v)
	img := v.disk(t, disk{current: "b", ptr: &bootptr.Pointer{Next: "b", Good: "b", Seq: 2},
		kernels: map[layout.Slot]slotKernel{"a": oldK.slot(), "b": newK.slot()}})
	direct := bootOpts{kernel: filepath.Join(newK.dir, "boot", "vmlinuz-"+newK.release), initrd: newK.initrd, timeout: 2 * time.Minute}
	viaKexec := bootOpts{timeout: 2 * time.Minute}
	n := min(benchBoots(), 3)
	var straight, switched []float64
	for range n { // interleaved, so load changes hit both alike
		for _, b := range []struct {
			o     bootOpts
			into  *[]float64
			kexec bool
		}{{direct, &straight, false}, {viaKexec, &switched, true}} {
			t0 := time.Now()
			out := v.bootWith(t, img, rootArg, b.o)
			ms := float64(time.Since(t0).Microseconds()) / 1000
			wantLines(t, out, "slot-init: kernel "+newK.release)
			if kexecd := strings.Contains(out, "switching by kexec"); kexecd != b.kexec {
				t.Fatalf("boot %+v: kexec %v, want %v", b.o, kexecd, b.kexec)
			}
			*b.into = append(*b.into, ms)
		}
	}
	med := median
	fmt.Printf("BENCH kernel_switch_extra_ms %.0f ms (kexec route %.0f ms vs straight into the slot's kernel %.0f ms; medians of %d qemu TCG boots each; host load %s)\n",
		med(switched)-med(straight), med(switched), med(straight), n, loadavg())
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}
