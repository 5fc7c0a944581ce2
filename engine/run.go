package engine

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

// step is one named stage of an upgrade or a check, as initrd.Plan's steps
// are: a console line names the step that failed.
type step struct {
	name string
	run  func(*run, context.Context) error
}

// StepError is the error of a step of Upgrade or Check: Step names it.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// run is one pass through a step table: what the steps found so far, and
// what they opened, which close releases in one place.
type run struct {
	cfg      *Config
	o        Options
	r        layout.Root
	readOnly bool // a check: no step writes anything but the seen index
	res      *Result
	done     bool // a step found nothing more to do

	active, inactive layout.Slot
	cur              *Installed
	aRoot, bRoot     *slotfs.Root
	rm               *Remote
	ref              *repo.VersionRef
	t                *Target
	spill            string // the target manifest's bytes, staged until record
	drift            []clone.Drift
	driftSet         map[string]bool
	p                *Plan
	j                *Journal
	unlimit          func() // undoes limitMemory
	ap               *applier

	// Background work of later steps' joining: the active manifest's
	// decoding and drift check (joined by target and plan) and the
	// download (started by clone, joined by fetch). close cancels and
	// waits for all of it.
	bg                        *errgroup.Group
	bgCtx                     context.Context
	bgCancel                  context.CancelFunc
	decoded, scanned, fetched *task
	cloned                    atomic.Bool // download progress is reported from here
	fetchedBefore             int64       // the fetcher's byte count when the download started
}

func newRun(cfg *Config, o Options, readOnly bool) *run {
	return &run{cfg: cfg, o: o, r: cfg.Root, readOnly: readOnly}
}

// do runs steps in order until one fails or one finds nothing more to do,
// then closes what they opened.
func (u *run) do(ctx context.Context, steps []step) (*Result, error) {
	bctx, cancel := context.WithCancel(ctx)
	u.bg, u.bgCtx = errgroup.WithContext(bctx)
	u.bgCancel = cancel
	defer u.close()
	for _, s := range steps {
		if err := s.run(u, ctx); err != nil {
			return u.res, &StepError{Step: s.name, Err: err}
		}
		if u.done {
			break
		}
	}
	return u.res, nil
}

// close ends the background work before it closes the roots that work
// reads, then gives back the job's memory.
func (u *run) close() {
	u.bgCancel()
	_ = u.bg.Wait() // each task's error went to the step that joined it
	if u.bRoot != nil {
		u.bRoot.Close()
	}
	if u.aRoot != nil {
		u.aRoot.Close()
	}
	if u.unlimit != nil {
		u.unlimit()
	}
	delta.Release() // a daemon keeps no decoder memory between jobs
}

// task is background work that one step starts and a later one joins.
type task struct {
	done chan struct{}
	err  error
}

// start runs f in the run's errgroup: the first error cancels the other
// background work, and close waits for f whatever the steps did.
func (u *run) start(f func(ctx context.Context) error) *task {
	t := &task{done: make(chan struct{})}
	u.bg.Go(func() error {
		defer close(t.done)
		t.err = f(u.bgCtx)
		return t.err
	})
	return t
}

// wait joins t and returns its error.
func (t *task) wait() error {
	<-t.done
	return t.err
}

func (u *run) report(p Progress) {
	if u.o.Progress != nil {
		u.o.Progress(p)
	}
}

// written is verify.Options.Written: the files this run's apply wrote.
func (u *run) written() func(verify.Inode) (digest.Digest, bool) {
	if u.ap == nil {
		return nil
	}
	return u.ap.Written
}
