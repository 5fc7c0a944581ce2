package serve

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/daemon/worker"
)

// Nice values and I/O priorities (ioprio_set(2), linux/ioprio.h; x/sys does
// not name them) of a worker. Background: the desktop (nice 0) gets about
// nine tenths of a contended core and the job still progresses, on the
// lowest best-effort I/O level; not the idle class, in which a reader can
// starve for as long as anything else reads. Idle: a timer's job, which
// nobody waits for, may starve.
const (
	BackgroundNice = 10
	IdleNice       = 19

	ioprioWhoProcess = 1
	ioprioClassShift = 13
	ioprioBELowest   = 2<<ioprioClassShift | 7
	ioprioIdle       = 3 << ioprioClassShift
)

// SetPriority lowers the whole process to p: every thread it has now, with
// SCHED_BATCH (no wake-up preemption of interactive threads), so that every
// thread the runtime starts later inherits it. It never raises a priority:
// a worker started at a higher nice value keeps it. Idle also leaves one of
// the process's CPUs to the rest of the system (see spareCPU). Priority is a
// courtesy, so the caller logs a failure and runs on.
func SetPriority(p worker.Priority) error {
	var nice int32
	var io uintptr
	switch p {
	case worker.Foreground:
		return nil
	case worker.Background:
		nice, io = BackgroundNice, ioprioBELowest
	case worker.Idle:
		nice, io = IdleNice, ioprioIdle
	default:
		return fmt.Errorf("unknown priority %q", p)
	}
	cpus, err := spareCPU(p)
	if err != nil {
		return err
	}
	// A thread started from one not yet lowered would escape: go over
	// the list until a pass finds no new thread.
	done := map[int]bool{}
	for more := true; more; {
		tids, err := threads()
		if err != nil {
			return err
		}
		more = false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			done[tid], more = true, true
			if err := lower(tid, nice, io, cpus); err != nil {
				return err
			}
		}
	}
	if cpus != nil {
		runtime.GOMAXPROCS(idleProcs(runtime.GOMAXPROCS(0), cpus.Count()))
	}
	return nil
}

// idleProcs is an idle worker's GOMAXPROCS: no more than the CPUs it keeps,
// and never more than it had (a GOMAXPROCS from the environment, or the
// runtime's own from a cgroup's CPU limit).
func idleProcs(cur, cpus int) int { return max(1, min(cur, cpus)) }

// spareCPU is the CPU set of an idle worker: the process's own, less its
// lowest CPU, when it has two or more. A timer's job, which nobody waits
// for, then never has every core busy: the daemon's D-Bus answers and the
// desktop always find a CPU that only has to wake up, where a busy core
// (even one running niced, batch threads) delays each of the several
// wake-ups of a D-Bus round trip. nil means no change.
func spareCPU(p worker.Priority) (*unix.CPUSet, error) {
	if p != worker.Idle {
		return nil, nil
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("affinity: %w", err)
	}
	if set.Count() < 2 {
		return nil, nil
	}
	for cpu := 0; ; cpu++ {
		if set.IsSet(cpu) {
			set.Clear(cpu)
			return &set, nil
		}
	}
}

func lower(tid int, nice int32, io uintptr, cpus *unix.CPUSet) error {
	old, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return nil // the thread ended meanwhile
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH, Nice: max(nice, old.Nice)}
	if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
		return fmt.Errorf("thread %d: %w", tid, err)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), io); e != 0 {
		return fmt.Errorf("thread %d: ioprio: %w", tid, e)
	}
	if cpus != nil {
		if err := unix.SchedSetaffinity(tid, cpus); err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d: affinity: %w", tid, err)
		}
	}
	return nil
}

// threads lists this process's thread ids.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// ThreadPriority reports the nice value and I/O class of thread tid (tests,
// status output).
func ThreadPriority(tid int) (nice, ioClass int, err error) {
	n, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, 0, err
	}
	r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if e != 0 {
		return 0, 0, e
	}
	return 20 - n, int(r) >> ioprioClassShift, nil
}
