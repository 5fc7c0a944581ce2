package systemtest

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// osFigures is one run of scenario 1: "upgrade" (timer start to
// ready-to-reboot), "shutdown" (v1's), "kernel-switch" (how much later
// v2's kernel clock starts than v1's: the kexec route's extra boot time),
// "reboot-to-good" (v1's shutdown, the switch, v2's kernel start to marked
// good), "boot-to-ready" (the switch, v2's kernel start to upgraded's
// READY=1) in seconds, "rss-mib" (the idle daemon's RSS).
type osFigures map[string]float64

// medianFigures takes, per key, the median over the runs: one TCG run on a
// shared machine is too noisy to compare.
func medianFigures(runs []osFigures) osFigures {
	all := map[string][]float64{}
	for _, r := range runs {
		for k, v := range r {
			all[k] = append(all[k], v)
		}
	}
	med := osFigures{}
	for k, vs := range all {
		sort.Float64s(vs)
		n := len(vs)
		med[k] = (vs[(n-1)/2] + vs[n/2]) / 2
	}
	return med
}

func TestMedianFigures(t *testing.T) {
	got := medianFigures([]osFigures{{"upgrade": 30, "rss-mib": 9}, {"upgrade": 10, "rss-mib": 8}, {"upgrade": 20, "rss-mib": 12}})
	if diff := cmp.Diff(osFigures{"upgrade": 20, "rss-mib": 9}, got); diff != "" {
		t.Errorf("medianFigures (-want +got):\n%s", diff)
	}
	if got := medianFigures([]osFigures{{"upgrade": 1}, {"upgrade": 4}}); got["upgrade"] != 2.5 {
		t.Errorf("median of two = %v, want their mean 2.5", got["upgrade"])
	}
}

// TestOSBench runs scenario 1 UPGRADE_OS_BENCH_RUNS times (make bench-os)
// and prints the medians as BENCH lines.
func TestOSBench(t *testing.T) {
	runs, err := strconv.Atoi(os.Getenv("UPGRADE_OS_BENCH_RUNS"))
	if os.Getenv("UPGRADE_OS_BENCH_RUNS") == "" {
		t.Skip("run by make bench-os")
	}
	if err != nil || runs < 1 {
		t.Fatalf("UPGRADE_OS_BENCH_RUNS=%q: want a count of runs", os.Getenv("UPGRADE_OS_BENCH_RUNS"))
	}
	e := getEnv(t)
	var all []osFigures
	for i := range runs {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			f := timerScenario(t, e)
			t.Logf("figures: %v", f)
			all = append(all, f)
		})
		if t.Failed() {
			t.FailNow()
		}
	}
	m := medianFigures(all)
	fmt.Printf("BENCH os_upgrade_s %.1f s (timer start to ready-to-reboot, TCG)\n", m["upgrade"])
	fmt.Printf("BENCH os_reboot_to_good_s %.1f s (v1 shutdown %.1f s + kernel switch + v2 kernel start to marked good, TCG)\n", m["reboot-to-good"], m["shutdown"])
	fmt.Printf("BENCH os_boot_to_ready_s %.1f s (firmware kernel start, kexec into v2's, to upgraded READY=1; D-Bus activated, TCG)\n", m["boot-to-ready"])
	fmt.Printf("BENCH os_daemon_idle_rss_mib %.1f MiB (shipped unit, idle after a check)\n", m["rss-mib"])
	fmt.Printf("BENCH os_kernel_switch_extra_ms %.0f ms (v2's boot, kexec from v1's firmware kernel, less v1's; qemu start to the guest clock's start, TCG)\n", m["kernel-switch"]*1000)
	fmt.Printf("BENCH os_bench_runs %d runs (figures are medians)\n", len(all))
}
