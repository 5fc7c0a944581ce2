// Package lowprio lets a worker goroutine run its CPU- and disk-heavy work
// (decompression, delta apply, hashing, cloning) at background priority, so
// that an upgrade on a school laptop yields to the desktop, and to the
// daemon's own D-Bus goroutines that answer the desktop's progress bar.
//
// Linux priorities belong to threads, not goroutines, so Background locks
// the goroutine to its thread while it works and its restore function puts
// the thread's priority back before unlocking it. A thread is never let go
// still niced (it would later run a D-Bus handler slowly); and it is not
// left to die with its goroutine either, when restoring works: a thread
// that exits sends PR_SET_PDEATHSIG to every child it forked, so a process
// that starts children with Pdeathsig (tests start dbus-daemon that way)
// would lose them to a worker that happened to run on that thread. Only
// when the priority cannot be raised back (no CAP_SYS_NICE, as in
// securityd's unit) does the goroutine end locked, taking the thread with
// it. Threads the runtime starts while a locked goroutine runs come from
// its template thread, so they do not inherit the nice value.
//
// It does nothing until Enable: a daemon's job is background work, but an
// upgrade run in the foreground (upgraded --once, tests, benchmarks) is
// what someone waits for.
//
// The main thread is left alone: it is the process as ps, top and renice
// see it. A worker that finds itself there runs at normal priority; a
// binary that uses workers locks its main goroutine to the main thread in
// an init function (see cmd/upgraded), so that never happens.
//
// Lowering a thread's own priority needs no privilege; where it fails
// anyway (seccomp, an old kernel) the work runs at normal priority and
// nothing is reported: priority is a courtesy, never a reason to fail.
package lowprio

import (
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Nice is the nice value of a background thread: the desktop (nice 0) gets
// about nine tenths of a contended core, and the worker still progresses.
const Nice = 10

// ioprio_set(2) constants (linux/ioprio.h); x/sys does not name them.
const (
	ioprioWhoProcess = 1
	ioprioClassBE    = 2
	ioprioClassShift = 13
	// ioprioBELowest is best-effort level 7, the lowest before the idle
	// class. Not idle: an idle-class reader can starve for as long as
	// anything else reads, and an upgrade must finish on a busy machine.
	ioprioBELowest = ioprioClassBE<<ioprioClassShift | 7
)

// IdleNice is the nice value of a worker during Idle.
const IdleNice = 19

// ioprioIdle is the idle I/O class: only a job nobody waits for (a timer's)
// may starve behind every other reader.
const ioprioIdle = 3 << ioprioClassShift

var (
	enabled atomic.Bool
	idle    atomic.Int32 // Idle calls not yet restored
)

// Idle makes workers that start from now until restore is called run at
// nice IdleNice and the idle I/O class, for a background job; the
// process's other threads (the D-Bus ones) keep their priority, so a
// desktop that looks in on the job still gets quick answers.
func Idle() (restore func()) {
	idle.Add(1)
	var once sync.Once
	return func() { once.Do(func() { idle.Add(-1) }) }
}

// Enable makes Background lower priorities from now on (a daemon calls it
// at startup).
func Enable() { enabled.Store(true) }

// Enabled reports whether Enable was called: work that would spread over
// all cores to finish sooner (someone waits for it) stays on one when it
// is background work.
func Enabled() bool { return enabled.Load() }

// Background locks the calling goroutine to its OS thread and lowers that
// thread's CPU priority (SCHED_BATCH at nice Nice: no wake-up preemption
// of interactive threads) and I/O priority (best-effort, lowest level),
// if Enable was called. It never raises a priority: a process started
// with a higher nice value keeps it. Call it first thing in a worker
// goroutine as
//
//	defer lowprio.Background()()
//
// The returned function restores the thread and unlocks it; if the
// priority cannot be restored the goroutine stays locked and its thread
// exits with it.
func Background() (restore func()) {
	if !enabled.Load() {
		return func() {}
	}
	runtime.LockOSThread() // first: threads cloned from here on come from the template thread
	tid := unix.Gettid()
	if tid == unix.Getpid() {
		runtime.UnlockOSThread()
		return func() {}
	}
	old, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return func() {}
	}
	oldIO, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	nice, io := int32(Nice), uintptr(ioprioBELowest)
	if idle.Load() > 0 {
		nice, io = IdleNice, ioprioIdle
	}
	nice = max(nice, old.Nice)
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH, Nice: nice}
	if unix.SchedSetAttr(tid, &attr, 0) != nil {
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, int(nice))
	}
	if errno == 0 {
		_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), io)
	}
	return func() {
		back := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: old.Policy, Nice: old.Nice, Priority: old.Priority}
		if unix.SchedSetAttr(tid, &back, 0) != nil {
			return // still niced: the thread ends with the goroutine
		}
		if errno == 0 {
			if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), oldIO); e != 0 {
				return
			}
		}
		runtime.UnlockOSThread()
	}
}
