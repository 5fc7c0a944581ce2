// Command dbusbench measures the daemon as a desktop sees it, on a private
// system-like bus (internal/testbus's configuration, the project's policy):
//
//	go run ./bench/dbusbench -work DIR -bin BIN
//
// DIR is a pair's work directory left by pairbench (repository, trusted
// keys, provisioned root). A copy of the root is upgraded by the real
// securityd and upgraded, from the repository served by a process of its
// own (the bench again, with -serve) under SCHED_IDLE. It prints the idle RSS (median of samples a
// second apart, after startup settled) of a bare godbus service
// (idlebase: the floor any Go D-Bus service pays) and of the daemon, then
// times 300 GetAll round trips to the idle daemon (the control: what the
// machine's other load costs the bus path), then starts an upgrade over
// D-Bus and, until Finished arrives, times GetAll round trips every 10 ms
// (a client polling a progress bar), printing p50/p99 (and, in the log,
// per job state), the daemon's peak RSS over the job and its RSS once
// idle again. The job figures are medians of -runs such sessions.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/bench/internal/proc"
)

const (
	name  = "org.laptop.Upgrade1"
	opath = dbus.ObjectPath("/org/laptop/Upgrade1")
)

func main() {
	work := flag.String("work", "", "pair work directory (from pairbench)")
	bin := flag.String("bin", "bin", "directory of our binaries")
	samples := flag.Int("idle-samples", 5, "idle RSS samples, one a second")
	denv := flag.String("daemon-env", "", "extra environment for upgraded (e.g. GOMAXPROCS=3), for experiments")
	floor := flag.Bool("floor", true, "also measure the idle RSS of bench/dbusbench/idlebase (a bare godbus service) as the floor")
	logs := flag.String("logs", "", "copy the servers' logs into this directory at the end")
	timerRuns := flag.Int("timer-runs", 0, "also this many jobs started as a timer does (option background: idle priority, one CPU left free), interleaved with the others")
	runs := flag.Int("runs", 5, "upgrade jobs, each on a fresh root and fresh servers")
	policy := flag.String("server-policy", "idle", "CPU policy of the repository's server process: idle (SCHED_IDLE, standing for another machine) or normal")
	serveDir := flag.String("serve", "", "internal: be the repository server for this directory")
	spinner := flag.Bool("spin", false, "internal: be a CPU spinner (the floor's load)")
	listen := flag.String("listen", "", "internal: the server's address (with -serve)")
	flag.Parse()
	if *spinner {
		spin()
	}
	if *serveDir != "" {
		serve(*serveDir, *listen)
		return
	}
	if *policy != "idle" && *policy != "normal" {
		log.Fatalf("-server-policy %q: want idle or normal", *policy)
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("dbusbench: ")
	if *work == "" {
		flag.Usage()
		os.Exit(2)
	}
	abs := func(p string) string { a, err := filepath.Abs(p); check(err); return a }
	*work, *bin = abs(*work), abs(*bin)
	o := opts{work: *work, bin: *bin, samples: *samples, denv: *denv, floor: *floor, logs: *logs, serverPolicy: *policy}
	// The job's figures vary from run to run far more than the idle ones
	// (what else the two cores run, where the kernel's writeback falls):
	// like every figure of make bench, they are medians of -runs jobs,
	// each on a fresh copy of the root with fresh servers.
	var rs, timer []result
	for i := range max(*runs, *timerRuns) {
		if i < *runs {
			r := session(o, i == 0)
			log.Printf("run %d: GetAll p50 %.3f ms, p99 %.3f ms (idle p99 %.3f ms)", i+1, r.p50, r.p99, r.idleP99)
			rs = append(rs, r)
		}
		if i < *timerRuns {
			to := o
			to.background = true
			r := session(to, i == 0 && *runs == 0)
			log.Printf("timer run %d: GetAll p50 %.3f ms, p99 %.3f ms (idle p99 %.3f ms)", i+1, r.p50, r.p99, r.idleP99)
			timer = append(timer, r)
		}
	}
	printTimer(timer)
	if len(rs) == 0 {
		return
	}
	med := func(f func(result) float64) float64 { return medianOf(rs, f) }
	fmt.Printf("BENCH dbus_getall_idle_p50_ms %.3f ms\n", med(func(r result) float64 { return r.idleP50 }))
	fmt.Printf("BENCH dbus_getall_idle_p99_ms %.3f ms\n", med(func(r result) float64 { return r.idleP99 }))
	fmt.Printf("BENCH dbus_getall_p50_ms %.3f ms\n", med(func(r result) float64 { return r.p50 }))
	fmt.Printf("BENCH dbus_getall_p99_ms %.3f ms\n", med(func(r result) float64 { return r.p99 }))
	fmt.Printf("BENCH daemon_peak_rss_mib %.2f MiB\n", med(func(r result) float64 { return r.peak }))
	fmt.Printf("BENCH worker_peak_rss_mib %.2f MiB\n", med(func(r result) float64 { return r.worker }))
	fmt.Printf("BENCH idle_after_job_rss_mib %.2f MiB\n", med(func(r result) float64 { return r.after }))
	fmt.Printf("BENCH idle_after_calls_rss_mib %.2f MiB\n", med(func(r result) float64 { return r.calls }))
	// What a job leaves in the daemon: its RSS after the job against its
	// RSS after the control's calls alone, in the same session.
	fmt.Printf("BENCH job_left_in_daemon_mib %.2f MiB\n", med(func(r result) float64 { return r.after - r.calls }))
	fmt.Printf("BENCH upgrade_over_dbus_seconds %.2f s\n", med(func(r result) float64 { return r.seconds }))
	// The targets of issue 15: answers during a job as fast as idle ones
	// of the same session, and no memory kept after a job.
	fmt.Printf("BENCH dbus_getall_p99_vs_idle %.3f x\n", med(func(r result) float64 { return r.p99 / r.idleP99 }))
	if f := theFloor; f != nil {
		after := med(func(r result) float64 { return r.after })
		fmt.Printf("BENCH idle_after_job_above_floor_mib %.2f MiB\n", after-f.rss)
		// Both have served D-Bus calls since they were idle: the difference
		// is what the job and the daemon's own code leave.
		fmt.Printf("BENCH idle_after_job_above_floor_after_calls_mib %.2f MiB\n", after-f.afterCalls)
		// The scheduler's share: how much slower the bare service's answers
		// get under the lightest background load, against the daemon's
		// during a real job.
		fmt.Printf("BENCH dbus_getall_p99_vs_idle_over_floor %.3f x\n", med(func(r result) float64 { return r.p99 / r.idleP99 })/f.loadedVsIdle)
	}
	fmt.Printf("BENCH dbus_runs %d jobs (figures are medians)\n", len(rs))
}

// printTimer prints the figures of the jobs started as a timer starts them
// (none without -timer-runs): the daemon's answers while an idle-priority
// worker leaves a CPU free, against the idle answers of the same sessions.
func printTimer(rs []result) {
	if len(rs) == 0 {
		return
	}
	med := func(f func(result) float64) float64 { return medianOf(rs, f) }
	fmt.Printf("BENCH dbus_timer_getall_p99_ms %.3f ms\n", med(func(r result) float64 { return r.p99 }))
	fmt.Printf("BENCH dbus_timer_getall_idle_p99_ms %.3f ms\n", med(func(r result) float64 { return r.idleP99 }))
	fmt.Printf("BENCH dbus_timer_getall_p99_vs_idle %.3f x\n", med(func(r result) float64 { return r.p99 / r.idleP99 }))
	fmt.Printf("BENCH upgrade_over_dbus_timer_seconds %.2f s\n", med(func(r result) float64 { return r.seconds }))
	fmt.Printf("BENCH dbus_timer_runs %d jobs (figures are medians)\n", len(rs))
}

// medianOf is the median of f over rs.
func medianOf(rs []result, f func(result) float64) float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return median(xs)
}

type opts struct {
	work, bin, denv, logs string
	serverPolicy          string
	samples               int
	floor, background     bool
}

// workerPeak is the largest worker peak RSS the daemon logged ("worker pid
// N ended: peak RSS X MiB"), in MiB.
func workerPeak(log string) float64 {
	var peak float64
	for _, l := range strings.Split(log, "\n") {
		_, v, ok := strings.Cut(l, "ended: peak RSS ")
		if !ok {
			continue
		}
		if x, err := strconv.ParseFloat(strings.TrimSuffix(v, " MiB"), 64); err == nil {
			peak = max(peak, x)
		}
	}
	return peak
}

// idleRSS waits for startup work (first refresh, GC) to settle, then
// returns the medians of n samples a second apart of the resident set and
// its anonymous and file-backed parts, in MiB.
func idleRSS(pid, n int) (rss, anon, file float64) {
	time.Sleep(2 * time.Second)
	var r, a, f []float64
	for i := 0; i < n; i++ {
		r = append(r, statusKiB(pid, "VmRSS")/1024)
		a = append(a, statusKiB(pid, "RssAnon")/1024)
		f = append(f, statusKiB(pid, "RssFile")/1024)
		time.Sleep(time.Second)
	}
	return median(r), median(a), median(f)
}

// threadNice counts pid's threads and those whose nice value (field 19
// of /proc/PID/task/TID/stat) differs from the main thread's.
func threadNice(pid int) (n, niced int) {
	nice := func(path string) string {
		s := readFile(path)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 16 {
			return f[16]
		}
		return ""
	}
	main := nice(fmt.Sprintf("/proc/%d/stat", pid))
	ts, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, t := range ts {
		if v := nice(t); v != "" {
			n++
			if v != main {
				niced++
			}
		}
	}
	return n, niced
}

// start runs a server with its output in w/NAME.log; returns its stop
// function (SIGTERM, then SIGKILL after 5 s) and pid.
func start(w, tag string, env []string, name string, args ...string) (func(), int) {
	stop, pid, err := proc.Start(filepath.Join(w, tag+".log"), env, name, args...)
	check(err)
	return stop, pid
}

func waitLog(path, pat string) bool {
	for i := 0; i < 200; i++ {
		if strings.Contains(readFile(path), pat) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

// statusKiB reads a "Key: N kB" line of /proc/PID/status.
func statusKiB(pid int, key string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			check(err)
			return n
		}
	}
	log.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func median(xs []float64) float64 { return pct(xs, 50) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
