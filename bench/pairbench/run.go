package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"syscall"
	"time"

	"laptop.org/upgrade/bench/internal/proc"
	"laptop.org/upgrade/bench/internal/stats"
)

// measured is one timed run of a command: wall time, the CPU time and peak
// RSS the kernel recorded for it (wait4's rusage: user+sys of the process
// and its waited-for children, the largest ru_maxrss among them).
type measured struct {
	Seconds float64
	CPU     float64
	RSSMiB  float64
	Out     string
}

// timed runs name with args, failing the benchmark on a non-zero exit: a
// peer that did not finish its job has no meaningful time.
// Under a CPU budget (budget.go) the command runs in its cgroup.
func timed(env []string, name string, args ...string) measured {
	cmd := exec.Command(name, args...)
	if clientBudget != nil {
		cmd = clientBudget.command(name, args...)
	}
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0).Seconds()
	if err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, tail(out.String(), 3000))
	}
	m := measured{Seconds: d, Out: out.String()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.RSSMiB = float64(ru.Maxrss) / 1024
		m.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return m
}

// quiet runs a setup command (not timed), failing loudly.
func quiet(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, tail(string(out), 3000))
	}
	return string(out)
}

// background starts a server process and returns a function that stops it
// (SIGTERM, then SIGKILL after 5 s) and waits for it.
func background(logPath string, name string, args ...string) func() {
	stop, _, err := proc.Start(logPath, nil, name, args...)
	check(err)
	return stop
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func median(xs []float64) float64 { return stats.Median(xs) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// copyFile copies a small file (configs, keys).
func copyFile(src, dst string) {
	in, err := os.Open(src)
	check(err)
	defer in.Close()
	out, err := os.Create(dst)
	check(err)
	_, err = io.Copy(out, in)
	check(err)
	check(out.Close())
}

// mib formats bytes as MB (10^6), the unit the issues use for wire bytes.
func mb(n int64) string { return fmt.Sprintf("%.2f", float64(n)/1e6) }
