package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
	"laptop.org/upgrade/security"
)

// progressEvery bounds the progress lines a worker writes: the engine
// reports every item, and each line costs the daemon a wake-up.
const progressEvery = 50 * time.Millisecond

// Serve is the worker's side: it reads the worker.Request from in, runs
// it, and writes events to out. The job's own failure is the outcome it
// reports, not Serve's error; Serve fails only when the pipe does.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	var req worker.Request
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("worker request: %w", err)
	}
	if err := SetPriority(req.Priority); err != nil {
		log.Printf("job %d: priority %s: %v (running at normal priority)", req.Job, req.Priority, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &writer{enc: json.NewEncoder(out), answers: make(chan worker.Answer, 1)}
	go func() {
		// Answers come on stdin; its end means the daemon is gone, and a
		// job nobody waits for stops (resumable, like a kill -9).
		defer cancel()
		defer close(w.answers)
		for {
			var a worker.Answer
			if err := dec.Decode(&a); err != nil {
				return
			}
			w.answers <- a
		}
	}()
	o := run(ctx, req, w)
	w.flush()
	return w.send(worker.Event{Done: &o})
}

// run runs the request's job and returns its outcome.
func run(ctx context.Context, req worker.Request, w *writer) worker.Final {
	cfg, err := EngineConfig(req.Settings, nil)
	if err != nil {
		return worker.Final{Error: worker.EncodeError(err)}
	}
	if req.Mode == worker.ModeCheck {
		res, upToDate, err := engine.Check(ctx, cfg, req.Version)
		return worker.Final{Result: res, UpToDate: upToDate, Error: worker.EncodeError(err)}
	}
	version := req.Version
	if req.ApplyOnly {
		if version, err = staged(ctx, cfg, version); err != nil {
			return worker.Final{Error: worker.EncodeError(err)}
		}
	}
	if req.AskBeforeWrite {
		cfg.BeforeWrite = w.ask
	}
	var sec *security.Service
	if req.Activate {
		sec = &security.Service{Root: cfg.Root, TrustedRoot: cfg.TrustedRoot, Keys: cfg.Keys, Policy: cfg.Policy, Tries: req.Tries, Logf: cfg.Logf}
		cfg.BeforeWrite = sec.Invalidate
	}
	res, err := engine.Upgrade(ctx, cfg, engine.Options{Version: version, NewestOnly: req.NewestOnly, Job: req.Job, Progress: w.progress})
	if err != nil || sec == nil {
		return worker.Final{Result: res, Error: worker.EncodeError(err)}
	}
	got, err := sec.Activate(ctx, res.Slot, 0)
	if err != nil {
		return worker.Final{Result: res, Error: worker.EncodeError(err)}
	}
	return worker.Final{Result: res, Next: &worker.Activated{Slot: got.Slot, Version: got.Version}}
}

// staged checks that version (0: whatever the inactive slot holds) is built
// and verified in the inactive slot, and returns it.
func staged(ctx context.Context, cfg *engine.Config, version layout.Version) (layout.Version, error) {
	if version == 0 {
		booted, err := cfg.Root.CurrentSlot()
		if err != nil {
			return 0, err
		}
		v, err := cfg.Root.InstalledVersion(booted.Other())
		if err != nil {
			return 0, fmt.Errorf("nothing is staged in slot %s (upgrade --download-only stages a version): %w", booted.Other(), errdefs.ErrFailedPrecondition)
		}
		version = v
	}
	res, upToDate, err := engine.Check(ctx, cfg, version)
	if err != nil {
		return 0, err
	}
	if upToDate {
		return 0, fmt.Errorf("version %d is already running: %w", version, errdefs.ErrUpToDate)
	}
	if !res.AlreadyReady {
		return 0, fmt.Errorf("version %d is not staged in slot %s; upgrade --download-only stages it: %w", version, res.Slot, errdefs.ErrFailedPrecondition)
	}
	return version, nil
}

// writer writes events; the engine reports progress from any goroutine.
type writer struct {
	mu      sync.Mutex
	enc     *json.Encoder
	err     error
	last    time.Time
	phase   report.Phase
	pending *report.Progress // the newest progress not yet written
	timer   *time.Timer      // writes pending when its turn comes
	done    bool             // flushed: nothing more is written
	answers chan worker.Answer
}

func (w *writer) send(e worker.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sendLocked(e)
}

func (w *writer) sendLocked(e worker.Event) error {
	if w.err == nil {
		w.err = w.enc.Encode(e)
	}
	return w.err
}

// progress writes p at once when the phase changes and otherwise at most
// every progressEvery. What the throttle holds back is written when its
// turn comes even if no later progress follows: a download that stalls
// must show the bytes it had reached, not those of 50 ms before.
func (w *writer) progress(p report.Progress) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	if since := time.Since(w.last); p.Phase == w.phase && since < progressEvery {
		w.pending = &p
		if w.timer == nil {
			w.timer = time.AfterFunc(progressEvery-since, w.writePending)
		}
		return
	}
	w.phase, w.last, w.pending = p.Phase, time.Now(), nil
	_ = w.sendLocked(worker.Event{Progress: &p})
}

// writePending writes the progress held back by the throttle.
func (w *writer) writePending() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.pending != nil && !w.done {
		w.last = time.Now()
		_ = w.sendLocked(worker.Event{Progress: w.pending})
		w.pending = nil
	}
}

// flush writes the progress held back by the throttle; nothing is written
// after it.
func (w *writer) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if w.pending != nil && !w.done {
		_ = w.sendLocked(worker.Event{Progress: w.pending})
		w.pending = nil
	}
	w.done = true
}

// ask has the daemon decide whether slot may be written now.
func (w *writer) ask(slot layout.Slot) error {
	if err := w.send(worker.Event{BeforeWrite: slot}); err != nil {
		return err
	}
	a, ok := <-w.answers
	if !ok {
		return fmt.Errorf("before writing slot %s: the daemon went away: %w", slot, errdefs.ErrCancelled)
	}
	return a.Error.Decode()
}

// Main is a worker process's life: the request on stdin, events on
// descriptor 3, SIGTERM cancels. It returns the exit code.
func Main(ctx context.Context) int {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	events := os.NewFile(3, "events")
	if events == nil {
		log.Print("worker: no event pipe on descriptor 3 (the daemon starts workers)")
		return 2
	}
	defer events.Close()
	if err := Serve(ctx, os.Stdin, events); err != nil {
		log.Printf("worker: %v", err)
		return 1
	}
	return 0
}
