package worker

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

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// progressEvery bounds the progress lines a worker writes: the engine
// reports every item, and each line costs the daemon a wake-up.
const progressEvery = 50 * time.Millisecond

// Serve is the worker's side: it reads the Request from in, runs it, and
// writes events to out. The job's own failure is the outcome it reports,
// not Serve's error; Serve fails only when the pipe does.
func Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	var req Request
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("worker request: %w", err)
	}
	if err := SetPriority(req.Priority); err != nil {
		log.Printf("job %d: priority %s: %v (running at normal priority)", req.Job, req.Priority, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &writer{enc: json.NewEncoder(out), answers: make(chan answer, 1)}
	go func() {
		// Answers come on stdin; its end means the daemon is gone, and a
		// job nobody waits for stops (resumable, like a kill -9).
		defer cancel()
		defer close(w.answers)
		for {
			var a answer
			if err := dec.Decode(&a); err != nil {
				return
			}
			w.answers <- a
		}
	}()
	o := run(ctx, req, w)
	w.flush()
	return w.send(event{Done: &o})
}

// run runs the request's job and returns its outcome.
func run(ctx context.Context, req Request, w *writer) outcome {
	cfg, err := req.Settings.Engine(nil)
	if err != nil {
		return outcome{Error: encodeError(err)}
	}
	if req.Mode == ModeCheck {
		res, upToDate, err := engine.Check(ctx, cfg, req.Version)
		return outcome{Result: res, UpToDate: upToDate, Error: encodeError(err)}
	}
	version := req.Version
	if req.ApplyOnly {
		if version, err = staged(ctx, cfg, version); err != nil {
			return outcome{Error: encodeError(err)}
		}
	}
	if req.AskBeforeWrite {
		cfg.BeforeWrite = w.ask
	}
	res, err := engine.Upgrade(ctx, cfg, engine.Options{Version: version, NewestOnly: req.NewestOnly, Job: req.Job, Progress: w.progress})
	return outcome{Result: res, Error: encodeError(err)}
}

// staged checks that version (0: whatever the inactive slot holds) is built
// and verified in the inactive slot, and returns it.
func staged(ctx context.Context, cfg *engine.Config, version layout.Version) (layout.Version, error) {
	if version == 0 {
		booted, err := cfg.Root.CurrentSlot()
		if err != nil {
			return 0, err
		}
		v, err := engine.InstalledVersion(cfg.Root, booted.Other())
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
	phase   engine.Phase
	pending *engine.Progress // the newest progress not yet written
	timer   *time.Timer      // writes pending when its turn comes
	done    bool             // flushed: nothing more is written
	answers chan answer
}

func (w *writer) send(e event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sendLocked(e)
}

func (w *writer) sendLocked(e event) error {
	if w.err == nil {
		w.err = w.enc.Encode(e)
	}
	return w.err
}

// progress writes p at once when the phase changes and otherwise at most
// every progressEvery. What the throttle holds back is written when its
// turn comes even if no later progress follows: a download that stalls
// must show the bytes it had reached, not those of 50 ms before.
func (w *writer) progress(p engine.Progress) {
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
	_ = w.sendLocked(event{Progress: &p})
}

// writePending writes the progress held back by the throttle.
func (w *writer) writePending() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.pending != nil && !w.done {
		w.last = time.Now()
		_ = w.sendLocked(event{Progress: w.pending})
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
		_ = w.sendLocked(event{Progress: w.pending})
		w.pending = nil
	}
	w.done = true
}

// ask has the daemon decide whether slot may be written now.
func (w *writer) ask(slot layout.Slot) error {
	if err := w.send(event{BeforeWrite: slot}); err != nil {
		return err
	}
	a, ok := <-w.answers
	if !ok {
		return fmt.Errorf("before writing slot %s: the daemon went away: %w", slot, errdefs.ErrCancelled)
	}
	return a.Error.decode()
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
