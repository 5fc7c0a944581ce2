package bgpolicy

import (
	"fmt"
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

// Lower gives every thread of this process idle I/O priority and nice 19,
// and returns a function that restores what each had. Linux keeps both per
// thread, and a Go program's goroutines move between threads, so all of
// them are changed; a thread created meanwhile inherits from its creator.
// Restoring a lower nice needs CAP_SYS_NICE (the unit grants it); without
// it the daemon stays polite, which is harmless.
func Lower() (restore func(), err error) {
	tids, err := threads()
	if err != nil {
		return func() {}, err
	}
	type saved struct{ tid, nice, io int }
	var old []saved
	for _, tid := range tids {
		s := saved{tid: tid}
		if n, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil {
			s.nice = 20 - n // the raw syscall returns 20 - nice
		}
		if r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0); e == 0 {
			s.io = int(r)
		}
		old = append(old, s)
		if e := setIOPrio(tid, ioprio(ioprioClassIdle, 0)); e != nil && err == nil {
			err = fmt.Errorf("ioprio_set idle: %w", e)
		}
		if e := unix.Setpriority(unix.PRIO_PROCESS, tid, niceIdle); e != nil && err == nil {
			err = fmt.Errorf("setpriority: %w", e)
		}
	}
	return func() {
		for _, s := range old {
			setIOPrio(s.tid, s.io)
			unix.Setpriority(unix.PRIO_PROCESS, s.tid, s.nice)
		}
	}, err
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
