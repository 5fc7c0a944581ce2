package daemon

import (
	"context"
	"fmt"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// Apply starts a job that activates a version staged by an Upgrade with
// DownloadOnly (0: the one in the inactive slot): the security service
// verifies it and makes it the next boot. Nothing is downloaded; a
// version that is not staged ends the job with FailedPrecondition.
func (d *Daemon) Apply(version layout.Version, o JobOpts) (uint32, error) {
	o.ApplyOnly, o.DownloadOnly = true, false
	return d.Upgrade(version, o)
}

// staged checks that version (0: whatever the inactive slot holds) is built
// and verified in the inactive slot, and returns it.
func (d *Daemon) staged(ctx context.Context, cfg *engine.Config, version layout.Version) (layout.Version, error) {
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

// SetChannel switches the channel the daemon follows, durably; "" returns
// to the config's. What the old channel offered is forgotten (the next
// check asks the new one); each channel keeps its own last-seen serial
// (engine), so a switch is no rollback and a switch back still catches one.
func (d *Daemon) SetChannel(channel string) error {
	if channel != "" && !layout.ValidChannel(channel) {
		return fmt.Errorf("channel %s: want 1-64 of A-Z, a-z, 0-9, '.', '-', '_' (or \"\" for the config's): %w", errdefs.Quote(channel, 64), errdefs.ErrInvalidArgument)
	}
	d.mu.Lock()
	defer d.unlock()
	if d.cancel != nil || d.st.State == StateChecking || d.st.State == StateRollingBack {
		return fmt.Errorf("the daemon is %s; switch channels when it is done: %w", d.st.State, errdefs.ErrBusy)
	}
	d.p.Channel = channel
	if channel == "" {
		channel = d.baseChannel
	}
	if channel != d.cfg.Engine.Channel {
		d.setAvailableLocked("", Release{})
		d.st.LastCheck, d.p.LastCheck = 0, 0
	}
	d.cfg.Engine.Channel, d.st.Channel = channel, channel
	d.cfg.Engine.Mirrors = ExpandMirrors(d.baseMirrors, channel)
	d.cfg.Logf("channel %s (mirrors %v)", channel, d.cfg.Engine.Mirrors)
	return d.p.save(d.path)
}

// Reload applies a re-read configuration (SIGHUP) to the next check and
// job: mirrors, channel (unless SetChannel chose one), hardware, download
// settings, policy, tries. A running job keeps the settings it started with.
func (d *Daemon) Reload(cfg engine.Config, tries int) {
	d.mu.Lock()
	defer d.unlock()
	d.baseChannel, d.baseMirrors = cfg.Channel, cfg.Mirrors
	if d.p.Channel != "" {
		cfg.Channel = d.p.Channel
	}
	cfg.Mirrors = ExpandMirrors(cfg.Mirrors, cfg.Channel)
	d.cfg.Engine, d.cfg.Tries = cfg, tries
	d.st.Channel = cfg.Channel
	d.cfg.Logf("configuration reloaded: %d mirrors, channel %s", len(cfg.Mirrors), cfg.Channel)
}
