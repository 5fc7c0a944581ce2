package bgpolicy

import (
	"laptop.org/upgrade/internal/lowprio"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ioprio_set(2) encoding: class in the top bits, data below.
const (
	ioprioClassShift = 13
	ioprioClassIdle  = 3
	ioprioWhoProcess = 1
	niceIdle         = 19
)

func ioprio(class, data int) int { return class<<ioprioClassShift | data }

// Lower makes the job's worker threads (internal/lowprio) run at nice 19
// and the idle I/O class until restore is called. Only the workers: the
// daemon's D-Bus threads keep their priority, so the Sugar panel that
// looks in on a timer's job still gets quick answers (renicing every
// thread also left threads created during the job at nice 19 for good,
// and made each garbage collection wait for a starved thread).
func Lower() (restore func(), err error) {
	return lowprio.Idle(), nil
}

func setIOPrio(tid, prio int) error {
	if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(prio)); e != 0 {
		return e
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

// ThreadPriority reports (nice, I/O class) of thread tid, for tests and
// status output.
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
