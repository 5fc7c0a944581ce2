package serve

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/daemon/worker"
)

// priorityEnv makes the test binary lower itself to its value and print
// the priority of each of its threads.
const priorityEnv = "WORKER_TEST_PRIORITY"

func TestMain(m *testing.M) {
	if p := os.Getenv(priorityEnv); p != "" {
		printPriorities(worker.Priority(p))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// prio is a thread's priority and the number of CPUs it may run on;
// Procs is the process's GOMAXPROCS.
type prio struct{ Nice, IOClass, CPUs, Procs int }

// printPriorities lowers the process to p, starts threads, and prints the
// priority of every thread it then has.
func printPriorities(p worker.Priority) {
	if err := SetPriority(p); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 4 { // locked goroutines make the runtime start threads
		wg.Go(func() {
			runtime.LockOSThread()
			<-release
		})
	}
	time.Sleep(10 * time.Millisecond) // not a check: only lets the threads start
	var out []prio
	tids, _ := threads()
	for _, tid := range tids {
		n, io, err := ThreadPriority(tid)
		var set unix.CPUSet
		if err == nil && unix.SchedGetaffinity(tid, &set) == nil {
			out = append(out, prio{n, io, set.Count(), runtime.GOMAXPROCS(0)})
		}
	}
	close(release)
	json.NewEncoder(os.Stdout).Encode(out)
}

// TestSetPriority: the whole worker process is lowered, threads started
// later included, while the caller's own priority stays. An idle worker
// leaves one CPU, and runs as many Ps as it has CPUs.
func TestSetPriority(t *testing.T) {
	self, selfIO, err := ThreadPriority(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpus := set.Count()
	if cpus < 2 {
		t.Logf("one CPU: the idle worker cannot leave one, and must not try")
	}
	for _, tc := range []struct {
		p    worker.Priority
		want prio
	}{
		{worker.Background, prio{max(BackgroundNice, self), 2, cpus, runtime.GOMAXPROCS(0)}},
		{worker.Idle, prio{max(IdleNice, self), 3, max(1, cpus-1), idleProcs(runtime.GOMAXPROCS(0), max(1, cpus-1))}},
	} {
		t.Run(string(tc.p), func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), priorityEnv+"="+string(tc.p))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			var got []prio
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if len(got) < 5 {
				t.Fatalf("only %d threads seen: %v", len(got), got)
			}
			for i, p := range got {
				if p != tc.want {
					t.Errorf("thread %d of %d: %+v, want %+v", i, len(got), p, tc.want)
				}
			}
		})
	}
	if n, io, _ := ThreadPriority(unix.Gettid()); n != self || io != selfIO {
		t.Errorf("the caller changed: nice %d io %d, was %d %d", n, io, self, selfIO)
	}
}

// TestIdleProcs: an idle worker's GOMAXPROCS follows the CPUs it keeps down,
// never up past what it was given.
func TestIdleProcs(t *testing.T) {
	for _, tc := range []struct{ cur, cpus, want int }{
		{8, 3, 3}, // the default, one per CPU: one fewer
		{1, 3, 1}, // GOMAXPROCS=1 from the environment stays
		{2, 7, 2}, // a cgroup's limit of two stays
		{4, 0, 1}, // never zero
	} {
		if got := idleProcs(tc.cur, tc.cpus); got != tc.want {
			t.Errorf("idleProcs(%d, %d) = %d, want %d", tc.cur, tc.cpus, got, tc.want)
		}
	}
}
