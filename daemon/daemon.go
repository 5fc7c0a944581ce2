// Package daemon is the upgrade daemon's behaviour, independent of D-Bus:
// one job at a time, durable job state that survives kill -9, progress as a
// status snapshot with throttled change notifications, and the hand-over to
// the security service. It drives package engine and never writes the boot
// pointer itself.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/textpages"
	"laptop.org/upgrade/layout"
)

// Security is what the daemon needs from the security service.
type Security interface {
	Activate(ctx context.Context, slot layout.Slot, tries int) (layout.Version, error)
	Invalidate(ctx context.Context, slot layout.Slot) error
	Rollback(ctx context.Context) (layout.Slot, layout.Version, error)
	Pointer(ctx context.Context) (bootptr.Pointer, error)
}

// Config wires the daemon.
type Config struct {
	Engine   engine.Config
	Security Security
	Tries    int
	// ErrorName maps an error to the name clients see (dbusapi.ErrorName).
	ErrorName func(error) string
	Logf      func(string, ...any)
	// Notify receives the properties that changed, at most every Throttle.
	Notify func(changed map[string]any)
	// Finished receives the end of every job, after the final Notify.
	Finished func(job uint32, success bool, errName, message string)
	Throttle time.Duration // default 100 ms: ≤ 10 updates/s, never > 1 s stale
	// System is the service integration (system.go); zero = none.
	System System
}

// Daemon owns all state; exported methods are safe for concurrent use.
type Daemon struct {
	cfg  Config
	path string

	mu          sync.Mutex // every holder releases it with unlock
	baseChannel string     // the config's channel (SetChannel overrides it)
	baseMirrors []string   // the config's mirrors, before ExpandMirrors
	st          Status
	pub         atomic.Pointer[Status] // st as of the last unlock (Status)
	sent        map[string]any         // last notified values
	dirty       bool
	p           persisted
	cancel      context.CancelFunc
	closing     bool
	jobDone     chan struct{}
	stop        chan struct{}
	wg          sync.WaitGroup
}

// New loads the durable state, refreshes what the disk says, and starts the
// notifier. Call Resume once the D-Bus surface is up.
func New(cfg Config) (*Daemon, error) {
	if cfg.Throttle == 0 {
		cfg.Throttle = 100 * time.Millisecond
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.ErrorName == nil {
		cfg.ErrorName = func(err error) string { return err.Error() }
	}
	d := &Daemon{cfg: cfg, path: filepath.Join(cfg.Engine.Root.StateDir(), "daemon.json"), stop: make(chan struct{})}
	p, err := loadPersisted(d.path)
	if err != nil {
		return nil, fmt.Errorf("daemon state: %w", err)
	}
	d.p = p
	d.baseChannel, d.baseMirrors = cfg.Engine.Channel, cfg.Engine.Mirrors
	if p.Channel != "" {
		d.cfg.Engine.Channel = p.Channel
	}
	d.cfg.Engine.Mirrors = ExpandMirrors(d.baseMirrors, d.cfg.Engine.Channel)
	d.st = Status{State: StateIdle, LastCheck: p.LastCheck, LastError: p.LastError, LastErrorMessage: p.LastErrorMessage, Channel: d.cfg.Engine.Channel}
	d.setAvailableLocked(p.AvailableVersion, p.Available)
	if n := len(p.History); n > 0 {
		// The last job survives a restart like its result: clients keep
		// seeing which job built what the next boot runs.
		last := p.History[n-1]
		d.st.Job, d.st.TargetVersion = last.Job, last.Version
		if last.Success {
			d.st.Progress = 100
		}
	}
	d.refreshLocked(context.Background())
	st := d.st
	d.pub.Store(&st)
	d.sent = d.st.Map()
	d.wg.Add(1)
	go d.notifier()
	return d, nil
}

// Status returns a snapshot: st as the last holder of mu left it. It does
// not wait for mu, so a D-Bus property read never waits behind a holder
// doing disk I/O (the state file's fsync when a job starts and ends, the
// boot pointer re-read), which took 10-20 ms behind other writeback.
func (d *Daemon) Status() Status { return *d.pub.Load() }

// unlock publishes st for Status and releases mu.
func (d *Daemon) unlock() {
	s := d.st // Drift is replaced, never modified in place: sharing it is safe
	d.pub.Store(&s)
	d.mu.Unlock()
}

// History returns finished jobs, newest first.
func (d *Daemon) History() []HistoryEntry {
	d.mu.Lock()
	defer d.unlock()
	out := make([]HistoryEntry, len(d.p.History))
	for i, h := range d.p.History {
		out[len(out)-1-i] = h
	}
	return out
}

// refreshLocked re-reads versions and the boot pointer from disk.
func (d *Daemon) refreshLocked(ctx context.Context) {
	r := d.cfg.Engine.Root
	booted, err := r.CurrentSlot()
	if err != nil {
		d.st.BootedSlot = ""
		return
	}
	d.st.BootedSlot = string(booted)
	if v, err := engine.InstalledVersion(r, booted); err == nil {
		d.st.CurrentVersion = v.String()
	}
	d.st.NextBootSlot, d.st.NextBootVersion, d.st.BootFailure = string(booted), d.st.CurrentVersion, ""
	if d.cfg.Security == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := d.cfg.Security.Pointer(ctx)
	if err != nil {
		d.cfg.Logf("boot pointer: %v", err)
		return
	}
	d.st.NextBootSlot = string(p.Next)
	if v, err := engine.InstalledVersion(r, p.Next); err == nil {
		d.st.NextBootVersion = v.String()
	} else {
		d.st.NextBootVersion = ""
	}
	if p.Failed != "" {
		d.st.BootFailure = fmt.Sprintf("slot %s did not finish booting within its tries; the system fell back to slot %s", p.Failed, booted)
	}
	if d.cancel == nil {
		switch {
		case p.Next != booted && d.st.NextBootVersion != "":
			// What boots next is complete, whatever a later job that
			// failed had reached: never "ready-to-reboot 0%".
			d.st.State, d.st.Progress = StateReadyToReboot, 100
		case d.st.State == StateReadyToReboot:
			// The pending version was withdrawn (Rollback).
			d.st.State = StateIdle
		}
	}
}

// notifier sends changed properties at most every Throttle.
func (d *Daemon) notifier() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.Throttle)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			d.flush()
			return
		case <-t.C:
			d.flush()
		}
	}
}

// flush sends what changed since the last notification.
func (d *Daemon) flush() {
	d.mu.Lock()
	cur := d.st.Map()
	changed := map[string]any{}
	for k, v := range cur {
		if fmt.Sprint(d.sent[k]) != fmt.Sprint(v) {
			changed[k] = v
		}
	}
	d.sent = cur
	d.dirty = false
	d.unlock()
	if len(changed) > 0 && d.cfg.Notify != nil {
		d.cfg.Notify(changed)
	}
}

// Close stops the notifier and cancels a running job (it stays resumable).
func (d *Daemon) Close() {
	d.mu.Lock()
	d.closing = true
	if d.cancel != nil {
		d.cancel()
	}
	done := d.jobDone
	d.unlock()
	if done != nil {
		<-done
	}
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.wg.Wait()
}

func (d *Daemon) saveLocked() {
	if err := d.p.save(d.path); err != nil {
		d.cfg.Logf("save state: %v", err)
	}
}

// Check queries the repository: what is available and what it would cost.
func (d *Daemon) Check(ctx context.Context, version layout.Version) (*engine.Result, bool, error) {
	d.mu.Lock()
	if d.cancel != nil {
		d.unlock()
		return nil, false, fmt.Errorf("an upgrade is running (job %d): %w", d.st.Job, errdefs.ErrBusy)
	}
	if d.st.State == StateRollingBack {
		d.unlock()
		return nil, false, fmt.Errorf("a rollback is running: %w", errdefs.ErrBusy)
	}
	prev := d.st.State
	d.st.State = StateChecking
	cfg := d.cfg.Engine // a copy: a reload applies to the next check
	d.unlock()

	defer releaseMemory() // the manifests and index the check read
	var res *engine.Result
	var upToDate bool
	start := time.Now()
	err := d.waitRoute(ctx, cfg.Mirrors)
	if err == nil {
		res, upToDate, err = engine.Check(ctx, &cfg, version)
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The caller's bound ran out: the mirrors did not answer in
		// time. That is a network failure, not a cancellation (the
		// fetch layer reports a done context as cancelled).
		err = fmt.Errorf("no answer from %s within %s, the time a check may take: %w",
			strings.Join(cfg.Mirrors, ", "), time.Since(start).Round(time.Second), errdefs.ErrNetwork)
	}

	d.mu.Lock()
	defer d.unlock()
	if d.st.State == StateChecking {
		d.st.State = prev
	}
	d.st.LastCheck = uint64(time.Now().Unix())
	d.p.LastCheck = d.st.LastCheck
	switch {
	case err != nil:
		d.setErrorLocked(err)
	case upToDate:
		d.setAvailableLocked("", Release{})
		d.setErrorLocked(nil)
	case res.AlreadyReady && d.st.NextBootSlot == string(res.Slot):
		// Built and next to boot: nothing is left to install, as after
		// the job that built it.
		d.setAvailableLocked("", Release{})
		d.setErrorLocked(nil)
	default:
		d.setAvailableLocked(res.Version.String(), Release{Name: res.Name, Notes: res.Notes, DownloadBytes: uint64(max(res.DownloadBytes, 0))})
		d.setErrorLocked(nil)
	}
	d.saveLocked()
	return res, upToDate, err
}

// releaseMemory collects and returns to the system what a check or a job
// left behind. Without it the pages stay until the next collection, which
// an idle daemon (a heap of a few hundred KiB, far below its goal) may not
// run for hours: the resident set would stay that of the last job.
//
// The code pages go back too (internal/textpages): a daemon that checks
// once a day need not keep the job's code mapped in between.
func releaseMemory() {
	debug.FreeOSMemory()
	_, _ = textpages.Release() // best effort: an old kernel keeps them
}

// setAvailableLocked records what an upgrade would install and its release
// (durably with the next save).
func (d *Daemon) setAvailableLocked(version string, rel Release) {
	if version == "" {
		rel = Release{}
	}
	d.st.AvailableVersion, d.p.AvailableVersion = version, version
	d.st.AvailableName, d.st.ReleaseNotes, d.st.DownloadBytes = rel.Name, rel.Notes, rel.DownloadBytes
	d.p.Available = rel
}

func (d *Daemon) setErrorLocked(err error) {
	if err == nil {
		d.st.LastError, d.st.LastErrorMessage = "", ""
	} else {
		d.st.LastError, d.st.LastErrorMessage = d.cfg.ErrorName(err), errdefs.Message(err)
	}
	d.p.LastError, d.p.LastErrorMessage = d.st.LastError, d.st.LastErrorMessage
}

// Rollback asks the security service to boot the other slot next.
//
// While the security service verifies the other slot (seconds), State is
// rolling-back and Upgrade, Check and another Rollback answer Busy: a job
// must not start writing into the slot being verified for the next boot.
func (d *Daemon) Rollback(ctx context.Context) (layout.Slot, layout.Version, error) {
	d.mu.Lock()
	switch {
	case d.cancel != nil:
		d.unlock()
		return "", 0, fmt.Errorf("an upgrade is running (job %d): %w", d.st.Job, errdefs.ErrBusy)
	case d.st.State == StateChecking || d.st.State == StateRollingBack:
		st := d.st.State
		d.unlock()
		return "", 0, fmt.Errorf("the daemon is %s; try again when it is done: %w", st, errdefs.ErrBusy)
	case d.cfg.Security == nil:
		d.unlock()
		return "", 0, fmt.Errorf("no security service: %w", errdefs.ErrFailedPrecondition)
	}
	d.st.State = StateRollingBack
	pending := d.st.NextBootVersion // a pending upgrade's version, if one is pending
	if d.st.NextBootSlot == d.st.BootedSlot {
		pending = ""
	}
	d.unlock()
	var slot layout.Slot
	var v layout.Version
	err := d.withInhibit(ctx, func() (err error) { slot, v, err = d.cfg.Security.Rollback(ctx); return err })
	d.mu.Lock()
	defer d.unlock()
	d.st.State = StateIdle // refreshLocked below says ready-to-reboot if so
	if err != nil {
		d.setErrorLocked(err)
	} else {
		d.setErrorLocked(nil)
	}
	d.refreshLocked(ctx)
	if err == nil && pending != "" && d.st.NextBootSlot == d.st.BootedSlot && newer(pending, d.st.CurrentVersion) {
		// The withdrawn version stays built: it is again what an upgrade
		// would install (and only activate).
		d.setAvailableLocked(pending, Release{})
	}
	d.saveLocked()
	return slot, v, err
}

// newer reports whether version a is above version b (decimal strings).
func newer(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x > y
}
