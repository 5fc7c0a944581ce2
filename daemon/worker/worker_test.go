package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
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
		json.NewEncoder(os.NewFile(3, "events")).Encode(Event{Progress: &report.Progress{Phase: report.PhaseDownloading, BytesDone: 1, BytesTotal: 2}})
		select {}
	case "error":
		// Answers with the error its before_write question got back.
		events := os.NewFile(3, "events")
		dec := json.NewDecoder(os.Stdin)
		var req Request
		dec.Decode(&req)
		json.NewEncoder(events).Encode(Event{BeforeWrite: "b"})
		var a Answer
		dec.Decode(&a)
		json.NewEncoder(events).Encode(Event{Done: &Final{Error: a.Error}})
	}
	os.Exit(0)
}

func readRequest() {
	var req Request
	json.NewDecoder(os.Stdin).Decode(&req)
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
	var got []report.Progress
	_, err := runner("progress-then-hang").Run(ctx, Request{Mode: ModeUpgrade}, Handler{Progress: func(p report.Progress) {
		got = append(got, p)
		cancel()
	}})
	if !errors.Is(err, errdefs.ErrCancelled) || errors.Is(err, errdefs.ErrWorkerCrashed) {
		t.Fatalf("Run = %v, want cancelled", err)
	}
	if diff := cmp.Diff([]report.Progress{{Phase: report.PhaseDownloading, BytesDone: 1, BytesTotal: 2}}, got); diff != "" {
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

// TestPin: a pinned worker runs the file as it was when pinned, even after
// a package upgrade replaced it (here: by a script that cannot answer).
func TestPin(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "upgrade-worker")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Pin(exe)
	if err != nil {
		t.Fatal(err)
	}
	next := exe + ".new"
	if err := os.WriteFile(next, []byte("#!/bin/sh\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, exe); err != nil {
		t.Fatal(err)
	}
	r.Env = append(os.Environ(), modeEnv+"=error")
	sent := fmt.Errorf("from the pinned worker: %w", errdefs.ErrNoSpace)
	_, err = r.Run(context.Background(), Request{Mode: ModeUpgrade}, Handler{BeforeWrite: func(layout.Slot) error { return sent }})
	if err == nil || err.Error() != sent.Error() {
		t.Fatalf("Run = %v, want the pinned worker's answer %v", err, sent)
	}
	if _, err := Pin(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Pin of a missing file succeeded")
	}
}
