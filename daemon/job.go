package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
)

// JobOpts are the options of Upgrade(s version, a{sv} options).
type JobOpts struct {
	Force      bool `json:"force,omitempty"`      // ignore background policy
	Background bool `json:"background,omitempty"` // started by a timer: background policy applies
	Tries      int  `json:"tries,omitempty"`      // boot tries for the new slot (0 = default)
	// DownloadOnly stages the version (built and verified in the inactive
	// slot) without asking the security service to make it the next boot;
	// Apply does that later.
	DownloadOnly bool `json:"download_only,omitempty"`
	// ApplyOnly activates a staged version and refuses to download.
	ApplyOnly bool `json:"apply_only,omitempty"`
	// NewestOnly: the caller may install only the newest version (see
	// engine.Options.NewestOnly); not a D-Bus option, set by authorization.
	NewestOnly bool `json:"newest_only,omitempty"`
}

// busyLocked is the error for starting work while other work runs.
func (d *Daemon) busyLocked() error {
	switch {
	case d.cancel != nil:
		return fmt.Errorf("an upgrade is already running (job %d); wait for it or cancel it: %w", d.st.Job, errdefs.ErrBusy)
	case d.st.State == StateChecking || d.st.State == StateRollingBack:
		return fmt.Errorf("the daemon is %s; try again when it is done: %w", d.st.State, errdefs.ErrBusy)
	}
	return nil
}

// Upgrade starts a job and returns its id at once, once the job is
// recorded durably (a restart resumes it).
func (d *Daemon) Upgrade(version layout.Version, o JobOpts) (uint32, error) {
	d.mu.Lock()
	if err := d.busyLocked(); err != nil {
		d.mu.Unlock()
		return 0, err
	}
	job := d.p.NextJob
	d.p.NextJob++
	d.p.Running = &Running{Job: job, Version: version, Opts: o, Started: time.Now().UTC()}
	run := *d.p.Running
	// Reserved: from here every other start answers Busy.
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.jobDone = cancel, make(chan struct{})
	d.mu.Unlock()

	err := d.save()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.p.Running, d.cancel = nil, nil
		close(d.jobDone)
		cancel()
		return 0, fmt.Errorf("save job: %w", err)
	}
	d.startLocked(ctx, run, false)
	return job, nil
}

// Resume restarts a job that a crash or kill -9 cut off; the engine's
// journal makes it continue where it stopped.
func (d *Daemon) Resume() (uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p.Running == nil || d.cancel != nil {
		return 0, false
	}
	d.cfg.Logf("resuming job %d cut off by a restart", d.p.Running.Job)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.jobDone = cancel, make(chan struct{})
	d.startLocked(ctx, *d.p.Running, true)
	return d.p.Running.Job, true
}

// Cancel stops the running job (its worker gets SIGTERM); it ends with
// Finished(…, Cancelled). With no job running it does nothing.
func (d *Daemon) Cancel() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		d.cancel()
	}
}

// Wait blocks until no job runs (tests, shutdown).
func (d *Daemon) Wait() {
	d.mu.Lock()
	done := d.jobDone
	d.mu.Unlock()
	if done != nil {
		<-done
	}
}

// startLocked shows the job as started and runs it; d.cancel and d.jobDone
// are set.
func (d *Daemon) startLocked(ctx context.Context, run Running, resumed bool) {
	d.st.Job = run.Job
	d.st.State = StateChecking
	d.st.Progress, d.st.BytesDone, d.st.BytesTotal = 0, 0, 0
	d.st.TargetVersion = run.Version.String()
	done := d.jobDone
	s, tries := d.settings, d.tries // copies: a reload applies to the next job
	if run.Opts.Tries != 0 {
		tries = run.Opts.Tries
	}
	go func() {
		defer close(done)
		err := d.run(ctx, s, tries, run)
		d.finish(ctx, run, resumed, err)
		// The job's bookkeeping (its progress events, the outcome) is
		// garbage below the collector's 4 MiB minimum goal, which an idle
		// daemon would keep resident until its next job.
		debug.FreeOSMemory()
	}()
}

// The engine's work is the first engineShare percent of a job; activation
// (the security service verifying the slot again) is the rest, and 100
// means done. The engine reports 100 when its part ends, which had the
// job go 100 -> 95 when activation began.
const (
	engineShare     = 90
	activatingStart = engineShare
)

// progress shows the engine's progress; PhaseDone ends the engine's part,
// not the job, so the state stays that of the last phase.
func (d *Daemon) progress(p report.Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel == nil {
		return
	}
	state := p.Phase
	if state == report.PhaseDone {
		state = d.st.State
	}
	d.setProgressLocked(state, uint32(p.Percent()*engineShare/100))
	if p.Phase == report.PhaseDownloading {
		d.st.BytesDone, d.st.BytesTotal = uint64(max(p.BytesDone, 0)), uint64(max(p.BytesTotal, 0))
	}
}

// setProgressLocked moves the running job to state and pct; Progress never
// goes backwards within a job (a retried download after a lost link, a
// phase the engine weighs differently), so a client's bar only grows.
func (d *Daemon) setProgressLocked(state State, pct uint32) {
	d.st.State = state
	d.st.Progress = max(d.st.Progress, min(pct, 99))
}

// run runs the job's worker, then has the security service activate what
// it built.
func (d *Daemon) run(ctx context.Context, s worker.Settings, tries int, run Running) error {
	req := worker.Request{Mode: worker.ModeUpgrade, Settings: s, Priority: worker.Background, Job: run.Job,
		Version: run.Version, NewestOnly: run.Opts.NewestOnly, ApplyOnly: run.Opts.ApplyOnly}
	res, err := d.runJob(ctx, run, &req)
	if res != nil && err == nil {
		c := res.Counts
		d.cfg.Logf("job %d: version %d into slot %s: keep %d, link %d, copy %d, delta %d, object %d; fetched %d bytes (resumed %v, drift %d)",
			run.Job, res.Version, res.Slot, c[report.Keep], c[report.Link], c[report.Copy], c[report.Delta], c[report.Object], res.Fetched, res.Resumed, len(res.Drift))
	}
	if res != nil {
		d.record(res, err == nil && run.Opts.DownloadOnly)
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, errdefs.ErrCancelled) {
			err = fmt.Errorf("job %d cancelled: %v: %w", run.Job, err, errdefs.ErrCancelled)
		}
		return err
	}
	if d.cfg.Security == nil || run.Opts.DownloadOnly {
		return nil
	}
	return d.activate(ctx, run, res.Slot, res.Version, tries)
}

// record shows what the engine built; staged: it waits for Apply.
func (d *Daemon) record(res *report.Result, staged bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.TargetVersion = res.Version.String()
	d.st.Drift = nil // not [:0]: earlier Status snapshots share the array
	for _, dr := range res.Drift {
		d.st.Drift = append(d.st.Drift, dr.Path+": "+dr.Reason)
	}
	if d.p.Running != nil {
		d.p.Running.Fetched += res.Fetched
	}
	if staged {
		// What an upgrade (Apply) would install, with nothing left to
		// download.
		d.setAvailableLocked(d.st.TargetVersion, Release{Name: res.Name, Notes: res.Notes})
	}
}

// activateTimeout bounds the security service's verification of a slot.
const activateTimeout = 10 * time.Minute

// activate has the security service verify the slot again with its own keys
// and swing the boot pointer to it (it alone may). Cancel does not cut the
// call short: the service would finish and might swing the pointer after
// we stopped listening, so a job reported cancelled could still boot next.
// Instead the answer is awaited and, if the job was cancelled meanwhile,
// the slot is withdrawn again. The service answers with the version it
// verified in the slot; one other than the job built is withdrawn too.
func (d *Daemon) activate(ctx context.Context, run Running, slot layout.Slot, built layout.Version, tries int) error {
	if ctx.Err() != nil {
		return fmt.Errorf("job %d cancelled before activation: %w", run.Job, errdefs.ErrCancelled)
	}
	d.mu.Lock()
	d.setProgressLocked(StateActivating, activatingStart)
	d.mu.Unlock()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), activateTimeout)
	defer cancel()
	var got layout.Version
	err := d.withInhibit(actx, func() (err error) { got, err = d.cfg.Security.Activate(actx, slot, tries); return err })
	d.mu.Lock()
	closing := d.closing // a shutdown, not a Cancel: the job resumes at the next start
	d.mu.Unlock()
	if ctx.Err() != nil && err == nil && !closing {
		if err := d.cfg.Security.Invalidate(actx, slot); err != nil {
			return fmt.Errorf("job %d was cancelled during activation, but withdrawing slot %s failed, so it boots next: %w", run.Job, slot, err)
		}
		return fmt.Errorf("job %d cancelled during activation; slot %s stays built but does not boot next: %w", run.Job, slot, errdefs.ErrCancelled)
	}
	if err != nil {
		return fmt.Errorf("slot %s is built but the security service did not activate it: %w", slot, err)
	}
	if got != built {
		if err := d.cfg.Security.Invalidate(actx, slot); err != nil {
			return fmt.Errorf("the security service activated slot %s as version %d, the job built %d, and withdrawing it failed, so it boots next: %v: %w", slot, got, built, err, errdefs.ErrVerification)
		}
		return fmt.Errorf("the security service activated slot %s as version %d, but the job built %d; the slot does not boot next: %w", slot, got, built, errdefs.ErrVerification)
	}
	return nil
}

// finish records the result durably, publishes the last properties, then
// sends Finished.
func (d *Daemon) finish(ctx context.Context, run Running, resumed bool, err error) {
	d.mu.Lock()
	closing := d.closing
	d.mu.Unlock()
	if closing {
		// Shutting down: the job stays recorded as running and resumes at
		// the next start, which sends its Finished.
		d.mu.Lock()
		d.cancel = nil
		d.st.State = StateIdle
		d.mu.Unlock()
		return
	}
	k := d.readDisk(context.WithoutCancel(ctx)) // before the job ends: nothing else starts meanwhile
	if k.pointerErr != nil {
		d.cfg.Logf("boot pointer: %v", k.pointerErr)
	}
	d.mu.Lock()
	d.cancel = nil
	entry := HistoryEntry{Job: run.Job, Version: d.st.TargetVersion, Success: err == nil, Started: run.Started, Finished: time.Now().UTC(), Resumed: resumed}
	if d.p.Running != nil {
		entry.Fetched = d.p.Running.Fetched
	}
	d.st.State = StateIdle
	d.setErrorLocked(err)
	if err != nil {
		entry.Error, entry.Message = d.st.LastError, d.st.LastErrorMessage
		d.cfg.Logf("job %d failed: %v", run.Job, err)
	} else {
		d.st.Progress = 100
		if run.Opts.DownloadOnly {
			d.cfg.Logf("job %d finished: version %s staged (Apply activates it)", run.Job, d.st.TargetVersion)
		} else {
			d.setAvailableLocked("", Release{})
			d.cfg.Logf("job %d finished: version %s ready", run.Job, d.st.TargetVersion)
		}
	}
	// The job is over whatever its outcome; the engine's journal still lets
	// the next job for the same target resume its clone and downloads.
	d.p.Running = nil
	d.p.History = append(d.p.History, entry)
	if len(d.p.History) > maxHistory {
		d.p.History = d.p.History[len(d.p.History)-maxHistory:]
	}
	d.applyDiskLocked(k)
	d.mu.Unlock()
	d.saveLogged()
	d.flush()
	if d.cfg.Finished != nil {
		d.cfg.Finished(run.Job, err == nil, entry.Error, entry.Message)
	}
}
