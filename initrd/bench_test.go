package initrd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/layout"
)

// The boot-cost benchmarks (make bench-initrd) boot with upgrade.timing on
// the command line and read /init's own figures off the console: "ready"
// is from the start of /init's main to just before exec of the real init,
// minus the time find-root spent waiting for the root device to appear.
// Each figure is the median of benchBoots() boots, since the machine is
// shared and TCG timing is noisy.

const defaultBenchBoots = 5

// benchBoots is UPGRADE_BENCH_BOOTS or 5.
func benchBoots() int {
	if n, err := strconv.Atoi(os.Getenv("UPGRADE_BENCH_BOOTS")); err == nil && n > 0 {
		return n
	}
	return defaultBenchBoots
}

var (
	timingRE = regexp.MustCompile(`upgrade-init: timing ready ([\d.]+) ms device-wait ([\d.]+) ms total ([\d.]+) ms`)
	stepRE   = regexp.MustCompile(`upgrade-init: step (\S+) ([\d.]+) ms`)
	moduleRE = regexp.MustCompile(`upgrade-init: module (\S+) round (\d+) ([\d.]+) ms`)
	preRE    = regexp.MustCompile(`upgrade-init: timing pre-main ([\d.]+) ms`)
)

// bootTimes is one boot's figures in ms, keyed "ready", "device-wait",
// "total", "pre-main", "full" (pre-main + ready), "step <name>",
// "module <file>".
type bootTimes map[string]float64

func parseTimes(console string) (bootTimes, error) {
	m := timingRE.FindStringSubmatch(console)
	if m == nil {
		return nil, fmt.Errorf("no timing line on the console (upgrade.timing not passed, or the boot failed)")
	}
	bt := bootTimes{}
	for i, k := range []string{"ready", "device-wait", "total"} {
		bt[k], _ = strconv.ParseFloat(m[i+1], 64)
	}
	if m := preRE.FindStringSubmatch(console); m != nil {
		bt["pre-main"], _ = strconv.ParseFloat(m[1], 64)
		bt["full"] = bt["pre-main"] + bt["ready"]
	}
	for _, m := range stepRE.FindAllStringSubmatch(console, -1) {
		bt["step "+m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	for _, m := range moduleRE.FindAllStringSubmatch(console, -1) {
		bt["module "+m[1]], _ = strconv.ParseFloat(m[3], 64)
	}
	return bt, nil
}

// medians takes, per key, the median over the boots.
func medians(boots []bootTimes) map[string]float64 {
	all := map[string][]float64{}
	for _, b := range boots {
		for k, v := range b {
			all[k] = append(all[k], v)
		}
	}
	out := map[string]float64{}
	for k, vs := range all {
		sort.Float64s(vs)
		n := len(vs)
		out[k] = (vs[(n-1)/2] + vs[n/2]) / 2
	}
	return out
}

// printBench prints the BENCH lines: name is e.g. "initrd" or
// "initrd_native"; steps in plan order, then modules.
func printBench(name string, boots []bootTimes) {
	med := medians(boots)
	if v, ok := med["full"]; ok {
		fmt.Printf("BENCH %s_ms %.1f ms\n", name, v)
		fmt.Printf("BENCH %s_premain_ms %.1f ms\n", name, med["pre-main"])
		fmt.Printf("BENCH %s_main_ms %.1f ms\n", name, med["ready"])
	} else {
		fmt.Printf("BENCH %s_ms %.1f ms (pre-main unknown)\n", name, med["ready"])
	}
	fmt.Printf("BENCH %s_device_wait_ms %.1f ms\n", name, med["device-wait"])
	fmt.Printf("BENCH %s_total_ms %.1f ms\n", name, med["total"])
	if v, ok := med["step load-modules"]; ok {
		fmt.Printf("BENCH %s_modules_ms %.1f ms\n", name, v)
	}
	for _, st := range Plan() {
		if v, ok := med["step "+st.Name]; ok {
			fmt.Printf("BENCH %s_step_%s_ms %.2f ms\n", name, strings.ReplaceAll(st.Name, "-", "_"), v)
		}
	}
	var mods []string
	for k := range med {
		if f, ok := strings.CutPrefix(k, "module "); ok {
			mods = append(mods, f)
		}
	}
	sort.Strings(mods)
	for _, f := range mods {
		fmt.Printf("BENCH %s_module_%s_ms %.1f ms\n", name, strings.TrimSuffix(f, ".ko"), med["module "+f])
	}
	fmt.Printf("BENCH %s_boots %d boots (figures are medians; host load %s)\n", name, len(boots), loadavg())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func TestParseTimes(t *testing.T) {
	console := "\x1b[0mupgrade-init: ready in 12 ms (device wait 1 ms, total 13 ms)\r\n" +
		"upgrade-init: timing ready 12.50 ms device-wait 0.75 ms total 13.25 ms\r\n" +
		"upgrade-init: timing pre-main 2.00 ms\r\n" +
		"upgrade-init: step mount-early 0.20 ms\r\nupgrade-init: step load-modules 10.00 ms\r\n" +
		"upgrade-init: module virtio.ko round 1 4.25 ms\r\n"
	got, err := parseTimes(console)
	if err != nil {
		t.Fatal(err)
	}
	want := bootTimes{"ready": 12.5, "device-wait": 0.75, "total": 13.25, "pre-main": 2, "full": 14.5, "step mount-early": 0.2,
		"step load-modules": 10, "module virtio.ko": 4.25}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseTimes (-want +got):\n%s", diff)
	}
	if _, err := parseTimes("upgrade-init: FATAL: step find-root"); err == nil {
		t.Error("a console without the timing line parsed")
	}
	med := medians([]bootTimes{{"ready": 3}, {"ready": 1}, {"ready": 2}, {"ready": 10}})
	if diff := cmp.Diff(map[string]float64{"ready": 2.5}, med); diff != "" {
		t.Errorf("medians (-want +got):\n%s", diff)
	}
}

// TestVMBench boots a normal disk benchBoots() times under qemu; each boot's
// disk is fresh, so every boot reads its disk cold, as a real one does.
func TestVMBench(t *testing.T) {
	if os.Getenv("UPGRADE_VM_BENCH") == "" {
		t.Skip("run by make bench-initrd")
	}
	v := needVM(t)
	var boots []bootTimes
	for range benchBoots() {
		img := v.disk(t, disk{current: "a", ptr: &bootptr.Pointer{Next: "a", Good: "a", Seq: 1}})
		bt, err := parseTimes(v.boot(t, img, rootArg+" upgrade.timing"))
		if err != nil {
			t.Fatal(err)
		}
		boots = append(boots, bt)
	}
	printBench("initrd", boots)
}

// TestNativeBench runs the host-safe steps (all but load-modules,
// switch-root and exec-init) on this machine's kernel and CPU, in a
// private mount and PID namespace as TestNamespace does, against an ext4
// image on a loop device found by LABEL=. Each run gets a fresh loop
// device with direct I/O, so the superblock, pointer and directory reads
// reach the image file rather than a warm block-device cache. This is what
// the same code costs on real hardware without TCG's 10-50x slowdown;
// module loading cannot be measured here (it would change the host kernel).
func TestNativeBench(t *testing.T) {
	if os.Getenv("UPGRADE_VM_BENCH") == "" {
		t.Skip("run by make bench-initrd")
	}
	for _, tool := range []string{"unshare", "losetup", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (make deps): %v", tool, err)
		}
	}
	initBin := os.Getenv("UPGRADE_INIT_BIN") // the image's /init, for its start-up cost
	label := fmt.Sprintf("upg-nb-%d", os.Getpid()%100000)
	img := filepath.Join(t.TempDir(), "disk.img")
	disk{label: label, slots: []layout.Slot{"a", "b"}, current: "a",
		ptr: &bootptr.Pointer{Next: "a", Good: "a", Seq: 1}}.build(t, img)
	// "ro" is what distros pass (the root is never mounted read-write on a
	// normal boot); "rw" is the VM tests' command line. Interleaved, so
	// both see the same load.
	variants := []struct{ name, args string }{{"initrd_native", " ro"}, {"initrd_native_rw", ""}}
	boots := make([][]bootTimes, len(variants))
	for i := range benchBoots() {
		for v, variant := range variants {
			bt := nativeRun(t, img, "root=LABEL="+label+" rootdelay=3 upgrade.timing"+variant.args)
			t.Logf("native run %d %s: %v", i, variant.name, bt)
			if initBin != "" {
				bt["pre-main"] = nativePreMain(t, initBin)
				bt["full"] = bt["pre-main"] + bt["ready"]
			}
			boots[v] = append(boots[v], bt)
		}
	}
	for v, variant := range variants {
		printBench(variant.name, boots[v])
	}
}

// nativeRun is one TestNativeBench boot on a fresh loop device.
func nativeRun(t *testing.T, img, cmdline string) bootTimes {
	t.Helper()
	loop := strings.TrimSpace(run(t, "losetup", "--find", "--show", "--direct-io=on", img))
	cmd := exec.Command("unshare", "-m", "-p", "-f", "--propagation", "private", os.Args[0], "-test.run=^TestNamespace$", "-test.v")
	cmd.Env = append(os.Environ(), nsChildEnv+"=1", "NS_PREFIX="+t.TempDir(), "NS_CMDLINE="+cmdline, "NS_WANT_SLOT=a")
	out, err := cmd.CombinedOutput()
	exec.Command("losetup", "-d", loop).Run()
	if err != nil || !strings.Contains(string(out), "\nPASS") {
		t.Fatalf("child %q: %v\n%s", cmdline, err, out)
	}
	bt, err := parseTimes(string(out))
	if err != nil {
		t.Fatal(err)
	}
	return bt
}

// nativePreMain times the image's own /init from fork to exit when it is
// not PID 1: it refuses on main's first statement, so this is the runtime's
// start (plus fork, exec and exit: an upper bound) on this machine.
func nativePreMain(t *testing.T, initBin string) float64 {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(initBin).CombinedOutput()
	d := time.Since(start)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "not PID 1") {
		t.Fatalf("%s as non-PID-1: %v\n%s (want its refusal, exit 2)", initBin, err, out)
	}
	return float64(d.Microseconds()) / 1000
}
