// Package systemd is the daemon's glue to the service manager and logind:
// sd_notify (readiness, status lines, stopping), the watchdog, logging to the
// journal with structured fields, and logind inhibitor locks.
//
// It exists so that upgraded behaves as a well-mannered system service: the
// service manager learns it is ready only once its bus name is owned, a hung
// upgrade is restarted by the watchdog (and resumes from its journal), and a
// shutdown or suspend waits while the inactive slot or the boot pointer is
// being written. Every piece degrades to a no-op outside systemd; none of it
// may ever make an upgrade fail.
package systemd

import (
	"sync"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Outcome is what became of one notification. sd_notify has three outcomes
// that callers must not confuse: a message that was sent, a process that is
// not under a service manager (nothing to do, not an error), and a failure to
// send (a real problem, worth one log line).
type Outcome int

const (
	Sent       Outcome = iota // the service manager received the message
	NotSystemd                // NOTIFY_SOCKET is unset: not supervised, nothing sent
	Failed                    // NOTIFY_SOCKET is set but sending failed
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case NotSystemd:
		return "not under systemd"
	}
	return "failed"
}

// Notifier sends sd_notify messages. The zero value is not usable; use
// NewNotifier. Safe for concurrent use.
type Notifier struct {
	logf func(string, ...any)

	mu         sync.Mutex
	loggedFail bool
	lastStatus string
}

// NewNotifier returns a notifier that reports the first send failure to logf
// (nil: silent). Later failures are not logged: a broken notify socket would
// otherwise flood the log with a line per progress update.
func NewNotifier(logf func(string, ...any)) *Notifier {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Notifier{logf: logf}
}

// Notify sends state (e.g. "READY=1\nSTATUS=idle") and reports the outcome.
// The environment is left alone, so a restarted watchdog or a child may
// still find NOTIFY_SOCKET.
func (n *Notifier) Notify(state string) (Outcome, error) {
	sent, err := sddaemon.SdNotify(false, state)
	switch {
	case err != nil:
		n.mu.Lock()
		first := !n.loggedFail
		n.loggedFail = true
		n.mu.Unlock()
		if first {
			n.logf("sd_notify: %v (further failures are not logged)", err)
		}
		return Failed, err
	case !sent:
		return NotSystemd, nil
	}
	return Sent, nil
}

// Ready tells the service manager that the service is up, with a first
// status line. Call it only once the bus name is owned: with Type=notify,
// units ordered after this one start at READY=1.
func (n *Notifier) Ready(status string) Outcome {
	n.mu.Lock()
	n.lastStatus = status
	n.mu.Unlock()
	o, _ := n.Notify(sddaemon.SdNotifyReady + "\nSTATUS=" + status)
	return o
}

// Status sets the one-line status `systemctl status` shows; an unchanged
// line is not sent again.
func (n *Notifier) Status(status string) Outcome {
	n.mu.Lock()
	same := status == n.lastStatus
	n.lastStatus = status
	n.mu.Unlock()
	if same {
		return Sent
	}
	o, _ := n.Notify("STATUS=" + status)
	return o
}

// Stopping tells the service manager that shutdown has begun.
func (n *Notifier) Stopping(status string) Outcome {
	o, _ := n.Notify(sddaemon.SdNotifyStopping + "\nSTATUS=" + status)
	return o
}
