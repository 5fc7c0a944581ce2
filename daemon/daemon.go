// Package daemon is the upgrade daemon's behaviour, independent of D-Bus:
// one job at a time, each in a worker process (package daemon/worker),
// durable job state that survives kill -9, progress as a status snapshot
// with throttled change notifications, and the hand-over to the security
// service. It never writes the boot pointer itself.
//
// Its state has one owner, mu, which guards memory only: no disk I/O and
// no call to another service happens while it is held, so a D-Bus property
// read never waits behind a fsync or the security service.
package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/daemon/worker"
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
	// Settings are the engine's settings, handed to each worker; their
	// Mirrors may hold ChannelToken.
	Settings worker.Settings
	// Worker starts the process that runs each job and check.
	Worker   *worker.Runner
	Security Security
	Tries    int
	// ErrorName maps an error to the name clients see (dbusapi.ErrorName).
	ErrorName func(error) string
	Logf      func(string, ...any)
	// Notify receives the status before and after a change, at most every
	// Throttle.
	Notify func(old, cur Status)
	// Finished receives the end of every job, after the final Notify.
	Finished func(job uint32, success bool, errName, message string)
	Throttle time.Duration // default 100 ms: ≤ 10 updates/s, never > 1 s stale
	// System is the service integration (system.go); zero = none.
	System System
}

// Daemon owns all state; exported methods are safe for concurrent use.
type Daemon struct {
	cfg  Config
	root layout.Root
	path string

	saveMu sync.Mutex // serializes writes of the state file, never held with mu

	mu       sync.Mutex // guards what follows; never held across I/O
	settings worker.Settings
	base     worker.Settings // the config's, before SetChannel and ExpandMirrors
	tries    int
	st       Status
	sent     Status // as of the last Notify
	p        persisted
	cancel   context.CancelFunc // the running job's; nil when none runs
	closing  bool
	jobDone  chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
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
	if cfg.Worker == nil {
		return nil, fmt.Errorf("daemon: no worker runner")
	}
	lr, err := layout.New(cfg.Settings.Root)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, root: lr, path: filepath.Join(lr.StateDir(), "daemon.json"), stop: make(chan struct{}), tries: cfg.Tries}
	p, err := loadPersisted(d.path)
	if err != nil {
		return nil, fmt.Errorf("daemon state: %w", err)
	}
	d.p = p
	d.base = cfg.Settings
	d.settings = followChannel(d.base, p.Channel)
	d.st = Status{State: StateIdle, LastCheck: p.LastCheck, LastError: p.LastError, LastErrorMessage: p.LastErrorMessage, Channel: d.settings.Channel}
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
	d.refresh(context.Background())
	d.sent = d.st
	d.wg.Add(1)
	go d.notifier()
	return d, nil
}

// followChannel is the config's settings for channel ("" = the config's
// own), with the mirrors expanded for it.
func followChannel(base worker.Settings, channel string) worker.Settings {
	s := base
	if channel != "" {
		s.Channel = channel
	}
	s.Mirrors = ExpandMirrors(base.Mirrors, s.Channel)
	return s
}

// Status returns a snapshot of every property.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st // Drift is replaced, never modified in place: sharing it is safe
}

// History returns finished jobs, newest first.
func (d *Daemon) History() []HistoryEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]HistoryEntry, len(d.p.History))
	for i, h := range d.p.History {
		out[len(out)-1-i] = h
	}
	return out
}

// disk is what refresh reads: the versions and the boot pointer.
type disk struct {
	booted, next          layout.Slot
	current, nextVersion  string
	failed                layout.Slot
	bootedErr, pointerErr error
}

// readDisk reads the slots' versions and asks the security service for the
// boot pointer (bounded: 10 s), without the lock.
func (d *Daemon) readDisk(ctx context.Context) disk {
	var k disk
	k.booted, k.bootedErr = d.root.CurrentSlot()
	if k.bootedErr != nil {
		return k
	}
	k.current = installedVersion(d.root, k.booted)
	k.next, k.nextVersion = k.booted, k.current
	if d.cfg.Security == nil {
		return k
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := d.cfg.Security.Pointer(ctx)
	if err != nil {
		k.pointerErr = err
		return k
	}
	k.next, k.nextVersion, k.failed = p.Next, installedVersion(d.root, p.Next), p.Failed
	return k
}

// refresh re-reads versions and the boot pointer, then applies them.
func (d *Daemon) refresh(ctx context.Context) {
	k := d.readDisk(ctx)
	if k.pointerErr != nil {
		d.cfg.Logf("boot pointer: %v", k.pointerErr)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applyDiskLocked(k)
}

func (d *Daemon) applyDiskLocked(k disk) {
	if k.bootedErr != nil {
		d.st.BootedSlot = ""
		return
	}
	d.st.BootedSlot = string(k.booted)
	if k.current != "" {
		d.st.CurrentVersion = k.current
	}
	d.st.NextBootSlot, d.st.NextBootVersion, d.st.BootFailure = string(k.next), k.nextVersion, ""
	if k.failed != "" {
		d.st.BootFailure = fmt.Sprintf("slot %s did not finish booting within its tries; the system fell back to slot %s", k.failed, k.booted)
	}
	if d.cancel != nil || k.pointerErr != nil {
		return
	}
	switch {
	case k.next != k.booted && k.nextVersion != "":
		// What boots next is complete, whatever a later job that failed
		// had reached: never "ready-to-reboot 0%".
		d.st.State, d.st.Progress = StateReadyToReboot, 100
	case d.st.State == StateReadyToReboot:
		// The pending version was withdrawn (Rollback).
		d.st.State = StateIdle
	}
}

// notifier sends changes at most every Throttle.
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

// flush notifies what changed since the last notification.
func (d *Daemon) flush() {
	d.mu.Lock()
	old, cur := d.sent, d.st
	d.sent = cur
	d.mu.Unlock()
	if !reflect.DeepEqual(old, cur) && d.cfg.Notify != nil {
		d.cfg.Notify(old, cur)
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
	d.mu.Unlock()
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

// save writes the durable state as it is now. Writes are serialized and
// each takes its snapshot after the previous write, so the file never goes
// back to an older state.
func (d *Daemon) save() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	b, err := json.MarshalIndent(d.p, "", " ")
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.path), 0755); err != nil {
		return err
	}
	return atomicfile.Write(d.path, b, 0644)
}

// saveLogged saves and logs a failure: the state in memory stays right,
// and the next save tries again.
func (d *Daemon) saveLogged() {
	if err := d.save(); err != nil {
		d.cfg.Logf("save state: %v", err)
	}
}
