package systemd

import (
	"context"
	"sync"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Watchdog sends WATCHDOG=1 pings. Pings must come from the loop that does
// the work — the engine's progress callbacks during a job, an idle ticker
// only while no job runs — so that a job stuck in one step stops the pings
// and the service manager restarts the daemon (which resumes the job from
// its journal). A ticker that pinged regardless would keep a hung upgrade
// alive forever.
type Watchdog struct {
	n        *Notifier
	interval time.Duration // WATCHDOG_USEC; 0 = disabled
	now      func() time.Time

	mu   sync.Mutex
	last time.Time
}

// NewWatchdog reads WATCHDOG_USEC (and WATCHDOG_PID). With no watchdog
// configured every method is a cheap no-op.
func NewWatchdog(n *Notifier) *Watchdog {
	d, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		n.logf("watchdog: %v; disabled", err)
		d = 0
	}
	return &Watchdog{n: n, interval: d, now: time.Now}
}

// Interval is the service manager's timeout (0: no watchdog).
func (w *Watchdog) Interval() time.Duration { return w.interval }

// Ping sends WATCHDOG=1 unless one was sent less than a quarter interval
// ago: progress callbacks fire many times a second, the watchdog needs a
// ping per half interval, so a quarter leaves margin without flooding.
func (w *Watchdog) Ping() {
	if w == nil || w.interval == 0 {
		return
	}
	w.mu.Lock()
	now := w.now()
	if !w.last.IsZero() && now.Sub(w.last) < w.interval/4 {
		w.mu.Unlock()
		return
	}
	w.last = now
	w.mu.Unlock()
	w.n.Notify(sddaemon.SdNotifyWatchdog)
}

// RunIdle pings every half interval while busy() is false, until ctx ends.
// While busy() is true the job's own progress must ping; RunIdle stays
// silent so that a hung job is noticed.
func (w *Watchdog) RunIdle(ctx context.Context, busy func() bool) {
	if w == nil || w.interval == 0 {
		return
	}
	t := time.NewTicker(w.interval / 2)
	defer t.Stop()
	if !busy() {
		w.Ping()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !busy() {
				w.Ping()
			}
		}
	}
}
