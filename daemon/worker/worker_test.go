package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// modeEnv makes the test binary a worker that behaves as its value says.
const modeEnv = "WORKER_TEST_MODE"

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "":
		os.Exit(m.Run())
	case "exit":
		readRequest()
		os.Exit(3) // no outcome
	case "panic":
		readRequest()
		panic("the worker broke")
	case "progress-then-hang":
		// Reports progress, then neither finishes nor heeds SIGTERM.
		signal.Ignore(syscall.SIGTERM)
		readRequest()
		json.NewEncoder(os.NewFile(3, "events")).Encode(event{Progress: &engine.Progress{Phase: engine.PhaseDownloading, BytesDone: 1, BytesTotal: 2}})
		select {}
	case "error":
		// Answers with the error its before_write question got back.
		events := os.NewFile(3, "events")
		dec := json.NewDecoder(os.Stdin)
		var req Request
		dec.Decode(&req)
		json.NewEncoder(events).Encode(event{BeforeWrite: "b"})
		var a answer
		dec.Decode(&a)
		json.NewEncoder(events).Encode(event{Done: &outcome{Error: a.Error}})
	case "priority":
		printPriorities(Priority(os.Getenv("WORKER_TEST_PRIORITY")))
	}
	os.Exit(0)
}

func readRequest() {
	var req Request
	json.NewDecoder(os.Stdin).Decode(&req)
}

type prio struct{ Nice, IOClass int }

// printPriorities lowers the process to p, starts threads, and prints the
// priority of every thread it then has.
func printPriorities(p Priority) {
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
		if err == nil {
			out = append(out, prio{n, io})
		}
	}
	close(release)
	json.NewEncoder(os.Stdout).Encode(out)
}

func runner(mode string) *Runner {
	return &Runner{Path: os.Args[0], Env: append(os.Environ(), modeEnv+"="+mode), Grace: 100 * time.Millisecond}
}

// TestCrash: a worker that ends without an outcome, however it ends, is a
// job error of its own class, naming how the worker ended.
func TestCrash(t *testing.T) {
	for _, mode := range []string{"exit", "panic"} {
		t.Run(mode, func(t *testing.T) {
			_, err := runner(mode).Run(context.Background(), Request{Mode: ModeUpgrade}, Handler{})
			if !errors.Is(err, errdefs.ErrWorkerCrashed) {
				t.Fatalf("Run = %v, want %v", err, errdefs.ErrWorkerCrashed)
			}
			t.Log(err)
		})
	}
}

// TestCancelKills: a cancelled worker that ignores SIGTERM is killed after
// the grace, and the job ends as cancelled, not as a crash.
func TestCancelKills(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var got []engine.Progress
	_, err := runner("progress-then-hang").Run(ctx, Request{Mode: ModeUpgrade}, Handler{Progress: func(p engine.Progress) {
		got = append(got, p)
		cancel()
	}})
	if !errors.Is(err, errdefs.ErrCancelled) || errors.Is(err, errdefs.ErrWorkerCrashed) {
		t.Fatalf("Run = %v, want cancelled", err)
	}
	if diff := cmp.Diff([]engine.Progress{{Phase: engine.PhaseDownloading, BytesDone: 1, BytesTotal: 2}}, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

// TestErrorClasses: an error crosses the pipe both ways with its classes,
// so errors.Is answers the same on either side.
func TestErrorClasses(t *testing.T) {
	sent := fmt.Errorf("invalidate b: %w: %w", errdefs.ErrNoSpace, context.DeadlineExceeded)
	_, err := runner("error").Run(context.Background(), Request{Mode: ModeUpgrade}, Handler{BeforeWrite: func(slot layout.Slot) error { return sent }})
	if err == nil || err.Error() != sent.Error() {
		t.Fatalf("Run = %v, want %v", err, sent)
	}
	for _, c := range []error{errdefs.ErrNoSpace, context.DeadlineExceeded} {
		if !errors.Is(err, c) {
			t.Errorf("the error lost its class %v", c)
		}
	}
	if errors.Is(err, errdefs.ErrNetwork) {
		t.Error("the error gained a class")
	}
}

// TestSetPriority: the whole worker process is lowered, threads started
// later included, while the caller's own priority stays.
func TestSetPriority(t *testing.T) {
	self, selfIO, err := ThreadPriority(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    Priority
		want prio
	}{
		{Background, prio{max(BackgroundNice, self), 2}},
		{Idle, prio{max(IdleNice, self), 3}},
	} {
		t.Run(string(tc.p), func(t *testing.T) {
			cmd := runner("priority").cmd()
			cmd.Env = append(cmd.Env, "WORKER_TEST_PRIORITY="+string(tc.p))
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
