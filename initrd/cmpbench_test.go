package initrd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/layout"
)

// The comparison with Debian's initramfs-tools (issue 14, Figures) boots
// both images on the same kernel, disk layout and qemu flags, interleaved,
// with markerinit as the slot's init. Both times come from the kernel log:
// "Run /init as init process" (the kernel hands over to the initrd) and
// markerinit's own line (the real init runs), stamped by one clock.

var klogRE = regexp.MustCompile(`markerinit: klog (?:<\d+>)?\[\s*([\d.]+)\] (Run /init as init process|markerinit: started)`)

// markerTimes is one boot's figures in seconds: "run-init" is the
// kernel's hand-over to /init, "init" the real init's start.
func markerTimes(console string) (map[string]float64, error) {
	got := map[string]float64{}
	for _, m := range klogRE.FindAllStringSubmatch(console, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return nil, err
		}
		if m[2] == "markerinit: started" {
			got["init"] = v
		} else {
			got["run-init"] = v
		}
	}
	if len(got) != 2 {
		return nil, fmt.Errorf("markerinit's kernel-log lines missing (boot failed, or no printk.time=1): got %v", got)
	}
	return got, nil
}

func TestMarkerTimes(t *testing.T) {
	console := "\x1b[0mmarkerinit: uptime 2.1\r\n" +
		"markerinit: klog <6>[    1.500000] Run /init as init process\r\n" +
		"markerinit: klog <12>[    2.012500] markerinit: started\r\n"
	got, err := markerTimes(console)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]float64{"run-init": 1.5, "init": 2.0125}, got); diff != "" {
		t.Errorf("markerTimes (-want +got):\n%s", diff)
	}
	if _, err := markerTimes("markerinit: klog [ 1.5] Run /init as init process\n"); err == nil {
		t.Error("a console without markerinit's own line parsed")
	}
}

// TestVMCompareBench boots our image, Debian's (UPGRADE_VM_DEBIAN_INITRD,
// built by make bench-initrd) and the floor image (floorImage)
// benchBoots() times each, alternating, each on a fresh disk, and prints
// the medians and their ratios.
func TestVMCompareBench(t *testing.T) {
	if os.Getenv("UPGRADE_VM_BENCH") == "" {
		t.Skip("run by make bench-initrd")
	}
	v := needVM(t)
	debian := os.Getenv("UPGRADE_VM_DEBIAN_INITRD")
	if _, err := os.Stat(debian); err != nil {
		t.Fatalf("UPGRADE_VM_DEBIAN_INITRD: %v (make bench-initrd builds it)", err)
	}
	marker := filepath.Join(t.TempDir(), "markerinit")
	goBuild(t, marker, "./internal/markerinit")
	images := []struct{ name, initrd, root string }{
		{"ours", v.initrd, rootArg},
		{"initramfs_tools", debian, rootArg}, // the same command line as ours
		{"floor", floorImage(t), "root=/dev/vda"},
	}
	boots := make([][]bootTimes, len(images))
	for range benchBoots() {
		for i, im := range images {
			img := filepath.Join(t.TempDir(), "disk.img")
			disk{label: vmLabel, slots: []layout.Slot{"a"}, current: "a", initBin: marker,
				ptr: &bootptr.Pointer{Next: "a", Good: "a", Seq: 1}}.build(t, img)
			out := v.bootWith(t, img, im.root+" rw printk.time=1", bootOpts{kernel: v.kernel, initrd: im.initrd, timeout: 180 * time.Second})
			mt, err := markerTimes(out)
			if err != nil {
				t.Fatalf("%s: %v\n%s", im.name, err, out)
			}
			bt := bootTimes{"initrd": mt["init"] - mt["run-init"], "boot": mt["init"]}
			t.Logf("%s: initrd %.3f s, boot to init %.3f s", im.name, bt["initrd"], bt["boot"])
			boots[i] = append(boots[i], bt)
		}
	}
	ours, deb, floor := medians(boots[0]), medians(boots[1]), medians(boots[2])
	for i, im := range images {
		med := medians(boots[i])
		fmt.Printf("BENCH initrd_cmp_%s_initrd_s %.3f s\n", im.name, med["initrd"])
		fmt.Printf("BENCH initrd_cmp_%s_boot_to_init_s %.3f s\n", im.name, med["boot"])
	}
	fmt.Printf("BENCH initrd_vs_initramfs_tools %.3f x\n", ours["initrd"]/deb["initrd"])
	fmt.Printf("BENCH boot_to_init_vs_initramfs_tools %.3f x\n", ours["boot"]/deb["boot"])
	fmt.Printf("BENCH initrd_floor_vs_initramfs_tools %.3f x\n", floor["initrd"]/deb["initrd"])
	fmt.Printf("BENCH initrd_vs_floor %.3f x\n", ours["initrd"]/floor["initrd"])
	fmt.Printf("BENCH initrd_cmp_boots %d boots each (figures are medians; host load %s)\n", len(boots[0]), loadavg())
}

// floorImage packs initrd/internal/floorinit as /init with the modules of
// our image (the kernel tree of UPGRADE_VM_KERNEL_DIR, the list of
// UPGRADE_VM_INITRD_MODULES or make initrd's default), built as make initrd
// builds ours: the floor of what any Go initramfs costs on this VM.
func floorImage(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("UPGRADE_VM_KERNEL_DIR")
	ver, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		t.Fatalf("UPGRADE_VM_KERNEL_DIR: %v (make bench-initrd sets it)", err)
	}
	list := os.Getenv("UPGRADE_VM_INITRD_MODULES")
	if list == "" {
		list = "../scripts/initrd/modules.txt"
	}
	tmp := t.TempDir()
	bin, img := filepath.Join(tmp, "floorinit"), filepath.Join(tmp, "floor.cpio.gz")
	goBuild(t, bin, "./internal/floorinit", "-ldflags=-s -w")
	kmod := filepath.Join(dir, "lib", "modules", strings.TrimSpace(string(ver)))
	cmd := exec.Command("go", "run", "./cmd/mkinitrd", "-init", bin, "-kmod", kmod, "-modules", list, "-o", img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkinitrd for the floor image: %v\n%s", err, out)
	}
	return img
}

// goBuild builds a static binary of pkg (relative to this package).
func goBuild(t *testing.T, out, pkg string, flags ...string) {
	t.Helper()
	args := append(append([]string{"build", "-trimpath"}, flags...), "-o", out, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
}
