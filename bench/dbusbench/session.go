package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/internal/testbus"
)

// result is one job's figures, in ms, MiB and s.
type result struct {
	idleP50, idleP99, p50, p99, peak, worker, after, seconds float64
	calls                                                    float64 // idle RSS after the control's calls, before the job
}

// sess is one session's processes and work directory.
type sess struct {
	o     opts
	w     string   // work directory, removed at the end
	stops []func() // in start order; cleanup runs them backwards
	addr  string   // the bus
	env   []string // with the bus address
	pid   int      // upgraded
}

// session starts a bus, securityd and upgraded on a fresh copy of the
// pair's root, times GetAll on the idle daemon and then during one
// upgrade, and stops everything. The first also prints the idle RSS.
func session(o opts, first bool) result {
	w, err := os.MkdirTemp(o.work, "dbus-")
	check(err)
	check(os.Chmod(w, 0755))
	s := &sess{o: o, w: w}
	defer s.cleanup()
	s.startAll(first)
	return s.measure()
}

func (s *sess) cleanup() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
	if s.o.logs != "" {
		os.MkdirAll(s.o.logs, 0755)
		ls, _ := filepath.Glob(filepath.Join(s.w, "*.log"))
		for _, l := range ls {
			os.WriteFile(filepath.Join(s.o.logs, filepath.Base(l)), []byte(readFile(l)), 0644)
		}
	}
	os.RemoveAll(s.w)
}

// fail stops everything, keeps the logs if asked, and exits.
func (s *sess) fail(format string, args ...any) {
	s.cleanup()
	log.Fatalf(format, args...)
}

// startAll copies the root, serves the repository and starts the bus,
// securityd, (first: the floor) and upgraded.
func (s *sess) startAll(first bool) {
	root := s.copyRoot()
	mirror := s.serveRepo()

	conf, addr, err := testbus.Prepare(filepath.Join(s.w, "bus"))
	check(err)
	s.addr, s.env = addr, append(os.Environ(), testbus.EnvVar+"="+addr)
	s.run("bus", s.env, "unix:", "dbus-daemon", "--config-file="+conf, "--nofork", "--print-address")
	keys := filepath.Join(s.o.work, "trusted")
	// As securityd.service starts it (Nice=10, CPUSchedulingPolicy=batch,
	// best-effort I/O at level 7): its hashing during activation competes
	// with the daemon as it does on a laptop, no more.
	s.run("securityd", s.env, "ready", "chrt", "--batch", "0", "nice", "-n", "10", "ionice", "-c", "2", "-n", "7",
		filepath.Join(s.o.bin, "securityd"), "--root", root, "--keys", keys)
	if s.o.floor && first {
		s.measureFloor()
	}
	uenv := s.env
	if s.o.denv != "" {
		uenv = append(append([]string{}, s.env...), strings.Fields(s.o.denv)...)
	}
	s.pid = s.run("upgraded", uenv, "ready", filepath.Join(s.o.bin, "upgraded"), "--root", root, "--keys", keys, "--mirror", mirror)
	if first {
		idle, anon, file := idleRSS(s.pid, s.o.samples)
		fmt.Printf("BENCH idle_rss_mib %.2f MiB\n", idle)
		// The parts: the Go heap and runtime, and the binary's pages (text and
		// tables the kernel maps in, with fault-around, as code runs).
		s.saveSmaps("upgraded-idle.smaps")
		fmt.Printf("BENCH idle_rss_anon_mib %.2f MiB\n", anon)
		fmt.Printf("BENCH idle_rss_file_mib %.2f MiB\n", file)
	} else {
		time.Sleep(2 * time.Second) // startup settles, as idleRSS waits
	}
}

// serveRepo serves the pair's repository from a process of its own and
// returns the mirror URL. The server stands for another machine: in this
// process it would delay the client's own goroutines, and at normal CPU
// priority it would take the two cores from the daemon as no remote
// mirror does, so by default it runs under SCHED_IDLE (-server-policy).
func (s *sess) serveRepo() string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	check(err)
	addr := ln.Addr().String()
	ln.Close() // the child binds it again at once; nothing else here takes ports
	self, err := os.Executable()
	check(err)
	exe, args := self, []string{"-serve", filepath.Join(s.o.work, "www"), "-listen", addr}
	if s.o.serverPolicy == "idle" {
		exe, args = "chrt", append([]string{"--idle", "0", self}, args...)
	}
	s.run("repo-server", os.Environ(), "serving", exe, args...)
	return "http://" + addr + "/repo/"
}

// serve is the repository server's process (-serve): plain files over
// HTTP until killed.
func serve(dir, addr string) {
	ln, err := net.Listen("tcp4", addr)
	check(err)
	fmt.Println("serving", dir, "on", addr)
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// copyRoot makes the session's root: the pair's provisioned root with an
// empty slot b and the state from before any job.
func (s *sess) copyRoot() string {
	root := filepath.Join(s.w, "root")
	if out, err := exec.Command("cp", "-a", filepath.Join(s.o.work, "root"), root).CombinedOutput(); err != nil {
		s.fail("copy root: %v %s", err, out)
	}
	os.RemoveAll(filepath.Join(root, "b"))
	os.RemoveAll(filepath.Join(root, "var/lib/upgrade"))
	if out, err := exec.Command("cp", "-a", filepath.Join(s.o.work, "state0"), filepath.Join(root, "var/lib/upgrade")).CombinedOutput(); err != nil {
		s.fail("copy state: %v %s", err, out)
	}
	return root
}

// run starts a process until the session ends and waits for ready in its
// log; it returns the pid.
func (s *sess) run(tag string, env []string, ready, exe string, args ...string) int {
	stop, pid := start(s.w, tag, env, exe, args...)
	s.stops = append(s.stops, stop)
	if !waitLog(filepath.Join(s.w, tag+".log"), ready) {
		s.fail("%s did not start: %s", tag, readFile(filepath.Join(s.w, tag+".log")))
	}
	return pid
}

// saveSmaps copies the daemon's smaps into the -logs directory as name:
// where its memory is, mapping by mapping.
func (s *sess) saveSmaps(name string) {
	if s.o.logs == "" {
		return
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", s.pid)); err == nil {
		_ = os.MkdirAll(s.o.logs, 0o755)
		_ = os.WriteFile(filepath.Join(s.o.logs, name), b, 0o644)
	}
}

// measure times GetAll on the idle daemon (the control), then during one
// upgrade, and reads the daemon's memory afterwards.
func (s *sess) measure() result {
	var res result
	conn, err := dbus.Connect(s.addr)
	if err != nil {
		s.fail("connect: %v", err)
	}
	defer conn.Close()
	sig := make(chan *dbus.Signal, 64)
	conn.Signal(sig)
	if err := conn.AddMatchSignal(dbus.WithMatchInterface(name), dbus.WithMatchMember("Finished")); err != nil {
		s.fail("match: %v", err)
	}
	obj := conn.Object(name, opath)
	getAll := func() (float64, string) {
		c0 := time.Now()
		var props map[string]dbus.Variant
		if err := obj.Call("org.freedesktop.DBus.Properties.GetAll", 0, name).Store(&props); err != nil {
			s.fail("GetAll: %v", err)
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
	// The daemon idle again after those calls and before any job: what a
	// job leaves is the difference with its RSS after the job.
	res.calls, _, _ = idleRSS(s.pid, 3)
	var job uint32
	uopts := map[string]dbus.Variant{}
	if s.o.background {
		uopts["background"] = dbus.MakeVariant(true)
	}
	if err := obj.Call(name+".Upgrade", 0, "", uopts).Store(&job); err != nil {
		s.fail("Upgrade: %v", err)
	}
	t0 := time.Now()
	rtt := s.pollUntilFinished(sig, getAll)
	res.seconds = time.Since(t0).Seconds()
	res.p50, res.p99 = pct(rtt, 50), pct(rtt, 99)
	res.peak = statusKiB(s.pid, "VmHWM") / 1024
	var anon, file float64
	res.after, anon, file = idleRSS(s.pid, 3)
	log.Printf("after the job: RSS %.2f MiB (anon %.2f, file %.2f)", res.after, anon, file)
	s.saveSmaps("upgraded-after-job.smaps")
	res.worker = workerPeak(readFile(filepath.Join(s.w, "upgraded.log")))
	// The job's worker process is niced, never the daemon that answers
	// D-Bus: none of its threads may be.
	n, niced := threadNice(s.pid)
	log.Printf("after the job: %d threads, %d of them niced", n, niced)
	if niced > 0 {
		s.fail("%d of the daemon's threads are niced", niced)
	}
	return res
}

// pollUntilFinished calls getAll every 10 ms until the job's Finished
// signal, and returns the round trips; it logs them per job state, where
// the slow calls fall.
func (s *sess) pollUntilFinished(sig <-chan *dbus.Signal, getAll func() (float64, string)) []float64 {
	var rtt []float64
	byState := map[string][]float64{}
	var states []string
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(10 * time.Minute)
	t0 := time.Now()
	for {
		select {
		case sg := <-sig:
			if sg.Name != name+".Finished" {
				continue
			}
			ok := false
			if len(sg.Body) >= 2 {
				ok, _ = sg.Body[1].(bool)
			}
			if !ok {
				s.fail("upgrade failed: %v\n%s", sg.Body, readFile(filepath.Join(s.w, "upgraded.log")))
			}
			log.Printf("upgrade over D-Bus finished in %.1fs; %d GetAll calls", time.Since(t0).Seconds(), len(rtt))
			for _, st := range states {
				x := byState[st]
				log.Printf("  %-16s %4d calls: p50 %6.2f ms, p99 %6.2f ms, max %6.2f ms", st, len(x), pct(x, 50), pct(x, 99), pct(x, 100))
			}
			return rtt
		case <-tick.C:
			ms, st := getAll()
			rtt = append(rtt, ms)
			if _, ok := byState[st]; !ok {
				states = append(states, st)
			}
			byState[st] = append(byState[st], ms)
		case <-limit:
			s.fail("no Finished after 10 minutes")
		}
	}
}
