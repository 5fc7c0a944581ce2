package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// floor is what a bare godbus service (idlebase) costs on this machine:
// the controls for the daemon's figures.
type floor struct {
	rss, afterCalls    float64 // idle RSS before and after serving calls (MiB)
	idleP99, loadedP99 float64 // GetAll round trips (ms)
	loadedVsIdle       float64
}

// floorCalls is how many GetAll calls the floor serves in each half of its
// latency control: about what the daemon serves in a session (300 idle,
// then one every 10 ms during the job).
const floorCalls = 500

// measureFloor runs idlebase under the daemon's name and object path, so
// that its calls take the daemon's way through the bus policy, and prints:
//   - its idle RSS: what any Go D-Bus service pays;
//   - GetAll round trips to it idle, and with every core busy with a
//     SCHED_IDLE spinner (the lowest-priority CPU load there is): what the
//     machine's scheduler alone adds to an answer while background work
//     runs, the bound for the daemon's answers during a job;
//   - its idle RSS again after serving those calls, since the daemon's
//     after-job figure includes the calls it served, not only the job.
func (s *sess) measureFloor() {
	// The same build flags as `make build`.
	exe := filepath.Join(s.w, "idlebase")
	b := exec.Command("go", "build", "-trimpath", "-o", exe, "./bench/dbusbench/idlebase")
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := b.CombinedOutput(); err != nil {
		s.fail("build idlebase: %v %s", err, out)
	}
	stop, fpid := start(s.w, "idlebase", s.env, exe, "-name", name, "-path", string(opath))
	defer stop()
	if !waitLog(filepath.Join(s.w, "idlebase.log"), "ready") {
		s.fail("idlebase did not start: %s", readFile(filepath.Join(s.w, "idlebase.log")))
	}
	var f floor
	var anon, file float64
	f.rss, anon, file = idleRSS(fpid, s.o.samples)
	fmt.Printf("BENCH idle_rss_floor_mib %.2f MiB\n", f.rss)
	fmt.Printf("BENCH idle_rss_floor_anon_mib %.2f MiB\n", anon)
	fmt.Printf("BENCH idle_rss_floor_file_mib %.2f MiB\n", file)
	conn, err := dbus.Connect(s.addr)
	if err != nil {
		s.fail("connect: %v", err)
	}
	defer conn.Close()
	obj := conn.Object(name, opath)
	f.idleP99 = pct(s.timeGetAll(obj, floorCalls), 99)
	spin := s.spinners()
	f.loadedP99 = pct(s.timeGetAll(obj, floorCalls), 99)
	spin()
	f.loadedVsIdle = f.loadedP99 / f.idleP99
	f.afterCalls, anon, file = idleRSS(fpid, s.o.samples)
	fmt.Printf("BENCH dbus_floor_getall_idle_p99_ms %.3f ms\n", f.idleP99)
	fmt.Printf("BENCH dbus_floor_getall_loaded_p99_ms %.3f ms\n", f.loadedP99)
	fmt.Printf("BENCH dbus_floor_p99_loaded_vs_idle %.3f x\n", f.loadedVsIdle)
	fmt.Printf("BENCH idle_rss_floor_after_calls_mib %.2f MiB\n", f.afterCalls)
	log.Printf("floor after %d GetAll calls: RSS %.2f MiB (anon %.2f, file %.2f)", 2*floorCalls, f.afterCalls, anon, file)
	theFloor = &f
}

// theFloor is the floor, once measured.
var theFloor *floor

// timeGetAll times n GetAll round trips to obj, 10 ms apart, in ms.
func (s *sess) timeGetAll(obj dbus.BusObject, n int) []float64 {
	var ms []float64
	for range n {
		c0 := time.Now()
		var props map[string]dbus.Variant
		if err := obj.Call("org.freedesktop.DBus.Properties.GetAll", 0, name).Store(&props); err != nil {
			s.fail("GetAll: %v", err)
		}
		ms = append(ms, float64(time.Since(c0).Microseconds())/1000)
		time.Sleep(10 * time.Millisecond)
	}
	return ms
}

// spinners keeps every core busy with a process of pure CPU work under
// SCHED_IDLE (this program with -spin) until the returned function is
// called.
func (s *sess) spinners() func() {
	self, err := os.Executable()
	check(err)
	var cmds []*exec.Cmd
	for range runtime.NumCPU() {
		c := exec.Command("chrt", "--idle", "0", self, "-spin")
		// A bench that exits on a failure must not leave them spinning.
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			s.fail("spinner: %v", err)
		}
		cmds = append(cmds, c)
	}
	time.Sleep(200 * time.Millisecond)
	return func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
}

// spin is a spinner's process (-spin): CPU work until killed.
func spin() {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			fmt.Println(x)
		}
	}
}
