// Command engineprof runs one engine.Upgrade in-process on a provisioned
// root, printing when each phase starts and optionally writing a CPU profile
// (go tool pprof): the tool for finding out why an upgrade is slow.
//
//	go run ./bench/engineprof -root R -mirror URL -keys DIR [-cpuprofile F]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo/sigkey"
)

func main() {
	root := flag.String("root", "", "provisioned root")
	mirror := flag.String("mirror", "", "repository URL")
	keys := flag.String("keys", "", "directory of trusted keys")
	channel := flag.String("channel", "stable", "channel")
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	workers := flag.Int("workers", 0, "engine workers (0 = GOMAXPROCS)")
	mem := flag.String("memprofile", "", "write a heap profile (allocations) here")
	heapAt := flag.String("heapat", "", "write the live heap when this phase starts (to -memprofile.PHASE)")
	jobLimit := flag.Int64("joblimit", -1, "engine.JobMemoryLimit in MiB (-1: the engine's default)")
	flag.Parse()
	if *jobLimit >= 0 {
		engine.JobMemoryLimit = *jobLimit << 20
	}
	lr, err := layout.New(*root)
	check(err)
	kr, err := sigkey.LoadKeyring(*keys)
	check(err)
	cfg := &engine.Config{Root: lr, Mirrors: []string{*mirror}, Channel: *channel, Keys: kr,
		Policy: &manifest.Policy{AllowSetuid: true, AllowDevices: true}, Logf: log.Printf, Workers: *workers}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	t0 := time.Now()
	var phase atomic.Value
	phase.Store(engine.PhaseChecking)
	stop := watchRSS(&phase)
	defer stop()
	last := engine.Phase("")
	res, err := engine.Upgrade(context.Background(), cfg, engine.Options{Progress: func(p engine.Progress) {
		if p.Phase != last {
			last = p.Phase
			phase.Store(p.Phase)
			if *heapAt == string(p.Phase) && *mem != "" {
				runtime.GC() // the profile is as of the last collection: make it now
				f, err := os.Create(*mem + "." + *heapAt)
				check(err)
				check(pprof.Lookup("heap").WriteTo(f, 0))
				f.Close()
			}
			fmt.Printf("%7.3fs %-11s (cpu so far %s)\n", time.Since(t0).Seconds(), p.Phase, cpuTime())
		}
	}})
	check(err)
	fmt.Printf("%7.3fs end: %v fetched %d (cpu %s)\n", time.Since(t0).Seconds(), res.Counts, res.Fetched, cpuTime())
	if *mem != "" {
		f, err := os.Create(*mem)
		check(err)
		check(pprof.Lookup("allocs").WriteTo(f, 0))
		f.Close()
	}
}

// watchRSS samples /proc/self/status every 20 ms and, when stopped, prints
// the peak anonymous and file-backed resident memory and the phase each
// peak came in.
func watchRSS(phase *atomic.Value) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		peak := map[string]int64{}
		at := map[string]any{}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			b, _ := os.ReadFile("/proc/self/status")
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok || (k != "VmRSS" && k != "RssAnon" && k != "RssFile") {
					continue
				}
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if n > peak[k] {
					peak[k], at[k] = n, phase.Load()
				}
			}
			select {
			case <-done:
				for _, k := range []string{"VmRSS", "RssAnon", "RssFile"} {
					fmt.Printf("peak %s %.1f MiB (in %v)\n", k, float64(peak[k])/1024, at[k])
				}
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// cpuTime is the process's user and system CPU time so far: with the
// phases' wall times it shows which phase leaves a core idle.
func cpuTime() string {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("user %.3fs sys %.3fs", time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds())
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
