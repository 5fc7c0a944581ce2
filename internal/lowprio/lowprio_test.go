package lowprio

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The main goroutine keeps the main thread, as in the binaries, so that
// the workers below get threads of their own.
func init() { runtime.LockOSThread() }

// prio is what the kernel says about one thread.
type prio struct {
	Nice   int
	Policy int // 0 SCHED_OTHER, 3 SCHED_BATCH
	IOPrio int // (class<<13)|level; 0 = none set (follows the nice value)
}

// threadPrio reads /proc/self/task/TID/stat (nice is field 19, policy
// field 41) and ioprio_get(2).
func threadPrio(t *testing.T, tid int) prio {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // f[0] is field 3
	nice, err1 := strconv.Atoi(f[19-3])
	pol, err2 := strconv.Atoi(f[41-3])
	if err1 != nil || err2 != nil {
		t.Fatalf("stat of %d: %q", tid, s)
	}
	io, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		t.Fatalf("ioprio_get %d: %v", tid, errno)
	}
	return prio{Nice: nice, Policy: pol, IOPrio: int(io)}
}

// Until Enable, Background changes nothing (a foreground run).
func TestBackgroundDisabled(t *testing.T) {
	if enabled.Load() {
		t.Skip("enabled by an earlier test in this process") // only with -run filters reordering; never in make test
	}
	var got, want prio
	var wg sync.WaitGroup
	wg.Go(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		want = threadPrio(t, unix.Gettid())
		restore := Background()
		got = threadPrio(t, unix.Gettid())
		restore()
	})
	wg.Wait()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("disabled Background changed the thread (-want +got)\n%s", d)
	}
}

func TestBackground(t *testing.T) {
	Enable()
	runtime.LockOSThread() // this test's own thread stays what it was
	defer runtime.UnlockOSThread()
	self := unix.Gettid()
	before := threadPrio(t, self)
	main := threadPrio(t, os.Getpid())

	const workers = 3
	got := make([]prio, workers)
	tids := make([]int, workers)
	var started, finish sync.WaitGroup
	started.Add(workers)
	finish.Add(1)
	var done sync.WaitGroup
	for i := range workers {
		done.Go(func() {
			defer Background()()
			tids[i] = unix.Gettid()
			got[i] = threadPrio(t, tids[i])
			// Start other goroutines while locked: their threads must
			// not inherit the nice value.
			var inner sync.WaitGroup
			for range 4 {
				inner.Go(func() { runtime.Gosched() })
			}
			inner.Wait()
			started.Done()
			finish.Wait()
		})
	}
	started.Wait()
	finish.Done()
	done.Wait()

	want := prio{Nice: max(Nice, before.Nice), Policy: unix.SCHED_BATCH, IOPrio: ioprioBELowest}
	tests := []struct {
		name      string
		got, want prio
	}{
		{"worker 0", got[0], want},
		{"worker 1", got[1], want},
		{"worker 2", got[2], want},
		{"test thread", threadPrio(t, self), before},
		{"main thread", threadPrio(t, os.Getpid()), main},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, tc.got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}

	// As root the workers' threads are restored and go back to the pool
	// (a thread that died would fire its children's Pdeathsig); without
	// the privilege to raise the nice value back they die with the
	// goroutine. Either way every thread left runs at the process's
	// priority.
	var left []string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		left = left[:0]
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			tid, _ := strconv.Atoi(e.Name())
			if p := threadPrio(t, tid); p.Nice != before.Nice || p.Policy == unix.SCHED_BATCH {
				left = append(left, fmt.Sprintf("%d %+v", tid, p))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("threads outlived their worker or inherited its priority: %v", left)
	}
	if os.Geteuid() == 0 { // CAP_SYS_NICE: restored, so the threads live on
		for _, tid := range tids {
			if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid)); err != nil {
				t.Errorf("worker thread %d ended although its priority could be restored: %v", tid, err)
			}
		}
	}
}
