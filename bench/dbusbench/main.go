// Command dbusbench measures the daemon as a desktop sees it, on a private
// system-like bus (internal/testbus's configuration, the project's policy):
//
//	go run ./bench/dbusbench -work DIR -bin BIN
//
// DIR is a pair's work directory left by pairbench (repository, trusted
// keys, provisioned root). A copy of the root is upgraded by the real
// securityd and upgraded. It prints the idle RSS (median of samples a
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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/bench/internal/proc"
	"laptop.org/upgrade/internal/testbus"
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
	runs := flag.Int("runs", 5, "upgrade jobs, each on a fresh root and fresh servers")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("dbusbench: ")
	if *work == "" {
		flag.Usage()
		os.Exit(2)
	}
	abs := func(p string) string { a, err := filepath.Abs(p); check(err); return a }
	*work, *bin = abs(*work), abs(*bin)
	o := opts{work: *work, bin: *bin, samples: *samples, denv: *denv, floor: *floor, logs: *logs}
	// The job's figures vary from run to run far more than the idle ones
	// (what else the two cores run, where the kernel's writeback falls):
	// like every figure of make bench, they are medians of -runs jobs,
	// each on a fresh copy of the root with fresh servers.
	var rs []result
	for i := range *runs {
		r := session(o, i == 0)
		log.Printf("run %d: GetAll p50 %.3f ms, p99 %.3f ms (idle p99 %.3f ms)", i+1, r.p50, r.p99, r.idleP99)
		rs = append(rs, r)
	}
	med := func(f func(result) float64) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	fmt.Printf("BENCH dbus_getall_idle_p50_ms %.3f ms\n", med(func(r result) float64 { return r.idleP50 }))
	fmt.Printf("BENCH dbus_getall_idle_p99_ms %.3f ms\n", med(func(r result) float64 { return r.idleP99 }))
	fmt.Printf("BENCH dbus_getall_p50_ms %.3f ms\n", med(func(r result) float64 { return r.p50 }))
	fmt.Printf("BENCH dbus_getall_p99_ms %.3f ms\n", med(func(r result) float64 { return r.p99 }))
	fmt.Printf("BENCH daemon_peak_rss_mib %.2f MiB\n", med(func(r result) float64 { return r.peak }))
	fmt.Printf("BENCH worker_peak_rss_mib %.2f MiB\n", med(func(r result) float64 { return r.worker }))
	fmt.Printf("BENCH idle_after_job_rss_mib %.2f MiB\n", med(func(r result) float64 { return r.after }))
	fmt.Printf("BENCH upgrade_over_dbus_seconds %.2f s\n", med(func(r result) float64 { return r.seconds }))
	// The targets of issue 15: answers during a job as fast as idle ones
	// of the same session, and no memory kept after a job.
	fmt.Printf("BENCH dbus_getall_p99_vs_idle %.3f x\n", med(func(r result) float64 { return r.p99 / r.idleP99 }))
	if floorRSS > 0 {
		fmt.Printf("BENCH idle_after_job_above_floor_mib %.2f MiB\n", med(func(r result) float64 { return r.after })-floorRSS)
	}
	fmt.Printf("BENCH dbus_runs %d jobs (figures are medians)\n", len(rs))
}

type opts struct {
	work, bin, denv, logs string
	samples               int
	floor                 bool
}

// result is one job's figures, in ms, MiB and s.
type result struct {
	idleP50, idleP99, p50, p99, peak, worker, after, seconds float64
}

// floorRSS is the idle RSS of idlebase, once measured (MiB).
var floorRSS float64

// session starts a bus, securityd and upgraded on a fresh copy of the
// pair's root, times GetAll on the idle daemon and then during one
// upgrade, and stops everything. The first also prints the idle RSS.
func session(o opts, first bool) result {
	work, bin, samples, denv, floor, logs := &o.work, &o.bin, &o.samples, &o.denv, &o.floor, &o.logs
	var res result
	w, err := os.MkdirTemp(*work, "dbus-")
	check(err)
	check(os.Chmod(w, 0755))
	var stops []func()
	cleanup := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		if *logs != "" {
			os.MkdirAll(*logs, 0755)
			ls, _ := filepath.Glob(filepath.Join(w, "*.log"))
			for _, l := range ls {
				os.WriteFile(filepath.Join(*logs, filepath.Base(l)), []byte(readFile(l)), 0644)
			}
		}
		os.RemoveAll(w)
	}
	defer cleanup()
	fail := func(format string, args ...any) {
		cleanup()
		log.Fatalf(format, args...)
	}

	root := filepath.Join(w, "root")
	if out, err := exec.Command("cp", "-a", filepath.Join(*work, "root"), root).CombinedOutput(); err != nil {
		fail("copy root: %v %s", err, out)
	}
	os.RemoveAll(filepath.Join(root, "b"))
	os.RemoveAll(filepath.Join(root, "var/lib/upgrade"))
	if out, err := exec.Command("cp", "-a", filepath.Join(*work, "state0"), filepath.Join(root, "var/lib/upgrade")).CombinedOutput(); err != nil {
		fail("copy state: %v %s", err, out)
	}

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	check(err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(*work, "www"))), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	stops = append(stops, func() { srv.Close() })
	mirror := "http://" + ln.Addr().String() + "/repo/"

	conf, addr, err := testbus.Prepare(filepath.Join(w, "bus"))
	check(err)
	env := append(os.Environ(), testbus.EnvVar+"="+addr)
	bus, _ := start(w, "bus", env, "dbus-daemon", "--config-file="+conf, "--nofork", "--print-address")
	stops = append(stops, bus)
	if !waitLog(filepath.Join(w, "bus.log"), "unix:") {
		fail("dbus-daemon did not start")
	}
	keys := filepath.Join(*work, "trusted")
	sec, _ := start(w, "securityd", env, filepath.Join(*bin, "securityd"), "--root", root, "--keys", keys)
	stops = append(stops, sec)
	if !waitLog(filepath.Join(w, "securityd.log"), "ready") {
		fail("securityd did not start: %s", readFile(filepath.Join(w, "securityd.log")))
	}
	if *floor && first {
		// The same build flags as `make build`.
		exe := filepath.Join(w, "idlebase")
		b := exec.Command("go", "build", "-trimpath", "-o", exe, "./bench/dbusbench/idlebase")
		b.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := b.CombinedOutput(); err != nil {
			fail("build idlebase: %v %s", err, out)
		}
		stop, fpid := start(w, "idlebase", env, exe)
		if !waitLog(filepath.Join(w, "idlebase.log"), "ready") {
			stop()
			fail("idlebase did not start: %s", readFile(filepath.Join(w, "idlebase.log")))
		}
		idle, anon, file := idleRSS(fpid, *samples)
		stop()
		fmt.Printf("BENCH idle_rss_floor_mib %.2f MiB\n", idle)
		floorRSS = idle
		fmt.Printf("BENCH idle_rss_floor_anon_mib %.2f MiB\n", anon)
		fmt.Printf("BENCH idle_rss_floor_file_mib %.2f MiB\n", file)
	}
	uenv := env
	if *denv != "" {
		uenv = append(append([]string{}, env...), strings.Fields(*denv)...)
	}
	up, pid := start(w, "upgraded", uenv, filepath.Join(*bin, "upgraded"), "--root", root, "--keys", keys, "--mirror", mirror)
	stops = append(stops, up)
	if !waitLog(filepath.Join(w, "upgraded.log"), "ready") {
		fail("upgraded did not start: %s", readFile(filepath.Join(w, "upgraded.log")))
	}

	if first {
		idle, anon, file := idleRSS(pid, *samples)
		fmt.Printf("BENCH idle_rss_mib %.2f MiB\n", idle)
		// The parts: the Go heap and runtime, and the binary's pages (text and
		// tables the kernel maps in, with fault-around, as code runs).
		fmt.Printf("BENCH idle_rss_anon_mib %.2f MiB\n", anon)
		fmt.Printf("BENCH idle_rss_file_mib %.2f MiB\n", file)
	} else {
		time.Sleep(2 * time.Second) // startup settles, as idleRSS waits
	}

	conn, err := dbus.Connect(addr)
	if err != nil {
		fail("connect: %v", err)
	}
	defer conn.Close()
	sig := make(chan *dbus.Signal, 64)
	conn.Signal(sig)
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(name), dbus.WithMatchMember("Finished")); err != nil {
		fail("match: %v", err)
	}
	obj := conn.Object(name, opath)
	getAll := func() (float64, string) {
		c0 := time.Now()
		var props map[string]dbus.Variant
		if err := obj.Call("org.freedesktop.DBus.Properties.GetAll", 0, name).Store(&props); err != nil {
			fail("GetAll: %v", err)
		}
		ms := float64(time.Since(c0).Microseconds()) / 1000
		st, _ := props["State"].Value().(string)
		return ms, st
	}
	// The control: the same calls to the idle daemon. What the machine's
	// other load costs the bus path, without our job.
	var ctl []float64
	for range 300 {
		ms, _ := getAll()
		ctl = append(ctl, ms)
		time.Sleep(10 * time.Millisecond)
	}
	res.idleP50, res.idleP99 = pct(ctl, 50), pct(ctl, 99)
	var job uint32
	if err := obj.Call(name+".Upgrade", 0, "", map[string]dbus.Variant{}).Store(&job); err != nil {
		fail("Upgrade: %v", err)
	}
	t0 := time.Now()
	var rtt []float64
	byState := map[string][]float64{} // where the slow calls fall
	var states []string
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	ok := false
loop:
	for {
		select {
		case s := <-sig:
			if s.Name == name+".Finished" {
				if len(s.Body) >= 2 {
					ok, _ = s.Body[1].(bool)
				}
				if !ok {
					fail("upgrade failed: %v\n%s", s.Body, readFile(filepath.Join(w, "upgraded.log")))
				}
				break loop
			}
		case <-tick.C:
			ms, st := getAll()
			rtt = append(rtt, ms)
			if _, ok := byState[st]; !ok {
				states = append(states, st)
			}
			byState[st] = append(byState[st], ms)
		case <-time.After(10 * time.Minute):
			fail("no Finished after 10 minutes")
		}
	}
	res.seconds = time.Since(t0).Seconds()
	log.Printf("upgrade over D-Bus finished in %.1fs; %d GetAll calls", res.seconds, len(rtt))
	for _, st := range states {
		x := byState[st]
		log.Printf("  %-16s %4d calls: p50 %6.2f ms, p99 %6.2f ms, max %6.2f ms", st, len(x), pct(x, 50), pct(x, 99), pct(x, 100))
	}
	res.p50, res.p99 = pct(rtt, 50), pct(rtt, 99)
	res.peak = statusKiB(pid, "VmHWM") / 1024
	res.after, _, _ = idleRSS(pid, 3)
	res.worker = workerPeak(readFile(filepath.Join(w, "upgraded.log")))
	// The job's worker process is niced, never the daemon that answers
	// D-Bus: none of its threads may be.
	n, niced := threadNice(pid)
	log.Printf("after the job: %d threads, %d of them niced", n, niced)
	if niced > 0 {
		fail("%d of the daemon's threads are niced", niced)
	}
	return res
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
