package daemon

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
)

// Check queries the repository, in a worker: what is available and what it
// would cost.
func (d *Daemon) Check(ctx context.Context, version layout.Version) (*report.Result, bool, error) {
	d.mu.Lock()
	if err := d.busyLocked(); err != nil {
		d.mu.Unlock()
		return nil, false, err
	}
	prev := d.st.State
	d.st.State = StateChecking
	s := d.settings // a copy: a reload applies to the next check
	d.mu.Unlock()

	var out worker.Outcome
	start := time.Now()
	err := d.waitRoute(ctx, s.Mirrors)
	if err == nil {
		out, err = d.cfg.Worker.Run(ctx, worker.Request{Mode: worker.ModeCheck, Settings: s, Priority: worker.Background, Version: version}, worker.Handler{})
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The caller's bound ran out: the mirrors did not answer in
		// time. That is a network failure, not a cancellation (the
		// worker reports a done context as cancelled).
		err = fmt.Errorf("no answer from %s within %s, the time a check may take: %w",
			strings.Join(s.Mirrors, ", "), time.Since(start).Round(time.Second), errdefs.ErrNetwork)
	}
	res, upToDate := out.Result, out.UpToDate

	d.mu.Lock()
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
	d.mu.Unlock()
	d.saveLogged()
	return res, upToDate, err
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
	if err := d.busyLocked(); err != nil {
		d.mu.Unlock()
		return "", 0, err
	}
	if d.cfg.Security == nil {
		d.mu.Unlock()
		return "", 0, fmt.Errorf("no security service: %w", errdefs.ErrFailedPrecondition)
	}
	d.st.State = StateRollingBack
	pending := d.st.NextBootVersion // a pending upgrade's version, if one is pending
	if d.st.NextBootSlot == d.st.BootedSlot {
		pending = ""
	}
	d.mu.Unlock()
	var slot layout.Slot
	var v layout.Version
	err := d.withInhibit(ctx, func() (err error) { slot, v, err = d.cfg.Security.Rollback(ctx); return err })
	k := d.readDisk(ctx)
	if k.pointerErr != nil {
		d.cfg.Logf("boot pointer: %v", k.pointerErr)
	}
	d.mu.Lock()
	d.st.State = StateIdle // applyDiskLocked says ready-to-reboot if so
	d.setErrorLocked(err)
	d.applyDiskLocked(k)
	if err == nil && pending != "" && d.st.NextBootSlot == d.st.BootedSlot && newer(pending, d.st.CurrentVersion) {
		// The withdrawn version stays built: it is again what an upgrade
		// would install (and only activate).
		d.setAvailableLocked(pending, Release{})
	}
	d.mu.Unlock()
	d.saveLogged()
	return slot, v, err
}

// newer reports whether version a is above version b (decimal strings).
func newer(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x > y
}

// Apply starts a job that activates a version staged by an Upgrade with
// DownloadOnly (0: the one in the inactive slot): the security service
// verifies it and makes it the next boot. Nothing is downloaded; a
// version that is not staged ends the job with FailedPrecondition.
func (d *Daemon) Apply(version layout.Version, o JobOpts) (uint32, error) {
	o.ApplyOnly, o.DownloadOnly = true, false
	return d.Upgrade(version, o)
}

// SetChannel switches the channel the daemon follows, durably; "" returns
// to the config's. What the old channel offered is forgotten (the next
// check asks the new one); each channel keeps its own last-seen serial
// (engine), so a switch is no rollback and a switch back still catches one.
func (d *Daemon) SetChannel(channel string) error {
	if channel != "" && !layout.ValidChannel(channel) {
		return fmt.Errorf("channel %s: want 1-64 of A-Z, a-z, 0-9, '.', '-', '_' (or \"\" for the config's): %w", errdefs.Quote(channel, 64), errdefs.ErrInvalidArgument)
	}
	d.mu.Lock()
	if err := d.busyLocked(); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("switch channels when it is done: %w", err)
	}
	d.p.Channel = channel
	s := followChannel(d.base, channel)
	if s.Channel != d.settings.Channel {
		d.setAvailableLocked("", Release{})
		d.st.LastCheck, d.p.LastCheck = 0, 0
	}
	d.settings, d.st.Channel = s, s.Channel
	d.mu.Unlock()
	d.cfg.Logf("channel %s (mirrors %v)", s.Channel, s.Mirrors)
	return d.save()
}

// Reload applies re-read settings (SIGHUP) to the next check and job:
// mirrors, channel (unless SetChannel chose one), hardware, download
// settings, policy, tries. A running job keeps the settings it started with.
func (d *Daemon) Reload(s worker.Settings, tries int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.base, d.tries = s, tries
	d.settings = followChannel(s, d.p.Channel)
	d.st.Channel = d.settings.Channel
	d.cfg.Logf("configuration reloaded: %d mirrors, channel %s", len(s.Mirrors), d.settings.Channel)
}
