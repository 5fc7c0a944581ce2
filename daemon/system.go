package daemon

import (
	"context"
	"fmt"
	"time"

	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
)

// System is the daemon's integration with the machine it runs on (packages
// systemd, netmon and bgpolicy in production); every field may be nil. It
// lives apart from the job logic so that the daemon's tests can leave it out
// and the integration's tests can drive it with stand-ins.
type System struct {
	// Network waits for a route before a check or a job and keeps a job's
	// download going over link losses (netmon.Monitor).
	Network Network
	// NetworkWait bounds each wait for a route (default 2 minutes).
	NetworkWait time.Duration
	// Inhibitor blocks shutdown and sleep while the inactive slot or the
	// boot pointer is being written (systemd.Inhibitor).
	Inhibitor Inhibitor
	// Background is the policy for jobs with background=true and not force.
	Background *Background
	// Alive is called from the job's own progress (the watchdog's ping):
	// only a job that moves keeps the daemon from being restarted.
	Alive func()
}

// Network is netmon.Monitor's surface the daemon uses.
type Network interface {
	WaitRoute(ctx context.Context, mirrors []string) (string, error)
	Persist(ctx context.Context, mirrors []string, wait time.Duration, attempt func(context.Context) error) error
}

// Inhibitor is systemd.Inhibitor's surface.
type Inhibitor interface {
	Acquire(ctx context.Context) error
	Release()
}

// Background is what happens to a timer-started job.
type Background struct {
	// Check refuses with an error wrapping errdefs.ErrPolicy and a reason
	// (metered connection, low battery); the job ends with it in LastError.
	Check func(ctx context.Context) error
	// MaxRate caps the job's download (bytes/s, 0 = none).
	MaxRate int64
}

func (d *Daemon) networkWait() time.Duration {
	if d.cfg.System.NetworkWait > 0 {
		return d.cfg.System.NetworkWait
	}
	return 2 * time.Minute
}

// waitRoute waits, bounded, for a route to a mirror (no-op without Network).
func (d *Daemon) waitRoute(ctx context.Context, mirrors []string) error {
	if d.cfg.System.Network == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.networkWait())
	defer cancel()
	_, err := d.cfg.System.Network.WaitRoute(ctx, mirrors)
	return err
}

// background applies the background policy to a job's request: a refusal
// is the job's error; otherwise the worker runs at idle priority under the
// rate cap.
func (d *Daemon) background(ctx context.Context, run Running, req *worker.Request) error {
	bg := d.cfg.System.Background
	if bg == nil || !run.Opts.Background || run.Opts.Force {
		return nil
	}
	if bg.Check != nil {
		if err := bg.Check(ctx); err != nil {
			return err
		}
	}
	if bg.MaxRate > 0 {
		req.Settings.Fetch.MaxRate = bg.MaxRate
	}
	req.Priority = worker.Idle
	d.cfg.Logf("job %d runs in the background: idle priority, rate cap %d B/s", run.Job, bg.MaxRate)
	return nil
}

// inhibit takes the shutdown/sleep lock; failure is logged, not fatal: the
// upgrade is crash-safe, the lock only spares it an interruption.
func (d *Daemon) inhibit(ctx context.Context) {
	if in := d.cfg.System.Inhibitor; in != nil {
		if err := in.Acquire(ctx); err != nil {
			d.cfg.Logf("inhibitor: %v (continuing without)", err)
		}
	}
}

func (d *Daemon) uninhibit() {
	if in := d.cfg.System.Inhibitor; in != nil {
		in.Release()
	}
}

// phaseLock follows the engine's phases: the lock is held while the engine
// writes the inactive slot (clone, apply) and dropped while it downloads or
// only reads (verify), so a long download never blocks a shutdown.
func (d *Daemon) phaseLock(ctx context.Context, p report.Phase) {
	switch p {
	case report.PhaseCloning, report.PhaseApplying:
		d.inhibit(ctx)
	case report.PhaseDownloading, report.PhaseVerifying, report.PhaseDone:
		d.uninhibit()
	}
}

// runJob runs the job's worker with the system integration: the
// background policy, the inhibitor around slot writes, watchdog pings from
// progress, and the network wait and link-loss resume (each attempt is a
// worker of its own, which resumes from the journal). Every path releases
// the inhibitor.
func (d *Daemon) runJob(ctx context.Context, run Running, req *worker.Request) (*report.Result, error) {
	if err := d.background(ctx, run, req); err != nil {
		return nil, err
	}
	defer d.uninhibit()
	req.AskBeforeWrite = d.cfg.Security != nil || d.cfg.System.Inhibitor != nil
	var last report.Phase // Handler calls come from Run's goroutine alone
	h := worker.Handler{
		Progress: func(p report.Progress) {
			if p.Phase != last {
				last = p.Phase
				d.phaseLock(ctx, p.Phase)
			}
			d.alive()
			d.progress(p)
		},
		BeforeWrite: func(s layout.Slot) error {
			// The security service withdraws the slot from the boot
			// pointer, then the clone starts: both under the lock.
			d.inhibit(ctx)
			if d.cfg.Security == nil {
				return nil
			}
			return d.cfg.Security.Invalidate(ctx, s)
		},
	}
	var res *report.Result
	attempt := func(actx context.Context) error {
		out, err := d.cfg.Worker.Run(actx, *req, h)
		if out.Pid != 0 {
			d.cfg.Logf("job %d: worker pid %d ended: peak RSS %.1f MiB", run.Job, out.Pid, float64(out.PeakRSS)/(1<<20))
		}
		if r := out.Result; r != nil {
			if res != nil {
				r.Fetched += res.Fetched
			}
			res = r
		}
		d.uninhibit() // an attempt cut off mid-apply must not keep the lock
		return err
	}
	if d.cfg.System.Network == nil {
		return res, attempt(ctx)
	}
	err := d.cfg.System.Network.Persist(ctx, req.Settings.Mirrors, d.networkWait(), func(actx context.Context) error {
		d.alive() // waiting for a link is work, not a hang
		return attempt(actx)
	})
	return res, err
}

// alive pings the watchdog.
func (d *Daemon) alive() {
	if d.cfg.System.Alive != nil {
		d.cfg.System.Alive()
	}
}

// withInhibit runs f (a boot pointer write by the security service) under
// the lock.
func (d *Daemon) withInhibit(ctx context.Context, f func() error) error {
	d.inhibit(ctx)
	defer d.uninhibit()
	return f()
}

// Busy reports whether a job runs: the idle watchdog ticker pings only
// when not, so that a hung job is left to the watchdog.
func (d *Daemon) Busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel != nil
}

// StatusLine is the one-line STATUS= for the service manager.
func (s Status) StatusLine() string {
	switch s.State {
	case StateIdle:
		if s.LastError != "" {
			return fmt.Sprintf("idle; last error: %s", s.LastErrorMessage)
		}
		return "idle"
	case StateDownloading:
		return fmt.Sprintf("job %d: downloading %d%% (%d/%d bytes)", s.Job, s.Progress, s.BytesDone, s.BytesTotal)
	case StateReadyToReboot:
		return fmt.Sprintf("version %s ready; reboot to use it", s.NextBootVersion)
	}
	return fmt.Sprintf("job %d: %s %d%%", s.Job, s.State, s.Progress)
}
