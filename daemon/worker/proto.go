// Package worker is the daemon's side of running one job (an upgrade or a
// check) in a process of its own, as systemd-sysupdated does: the daemon
// stays small and answers D-Bus at once, and the job's priority, memory and
// crashes are the worker's alone. The worker is a binary of its own,
// upgrade-worker (package serve below, which links the engine); the daemon
// starts it with Runner and links neither the engine nor the network.
//
// The protocol is JSON, one value per line. The daemon writes the Request
// to the worker's stdin, then the answers to its questions. The worker
// writes events to file descriptor 3: progress, a question (may slot X be
// written now? the daemon asks the security service), and last the
// outcome (Final). A worker that ends without one has crashed
// (errdefs.ErrWorkerCrashed). A worker whose stdin closes (the daemon died)
// cancels its job, which stays resumable.
//
// The worker never talks to D-Bus or the service manager: everything
// outside the engine goes through the daemon.
package worker

import (
	"context"
	"errors"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
)

// Mode is what a worker does.
type Mode string

const (
	ModeUpgrade Mode = "upgrade" // engine.Upgrade into the inactive slot
	ModeCheck   Mode = "check"   // engine.Check: writes no slot
)

// Priority is the worker process's CPU and I/O priority (priority.go).
type Priority string

const (
	// Foreground leaves the priority alone.
	Foreground Priority = ""
	// Background yields to the desktop: a job someone started.
	Background Priority = "background"
	// Idle runs only when nothing else wants the machine: a timer's job.
	Idle Priority = "idle"
)

// Request is the first line on the worker's stdin.
type Request struct {
	Mode     Mode           `json:"mode"`
	Settings Settings       `json:"settings"`
	Priority Priority       `json:"priority,omitempty"`
	Job      uint32         `json:"job,omitempty"`
	Version  layout.Version `json:"version,omitempty"` // 0: the newest (upgrade) or the staged one (apply)
	// NewestOnly: see engine.Options.NewestOnly.
	NewestOnly bool `json:"newest_only,omitempty"`
	// ApplyOnly refuses to download: the version must be staged in the
	// inactive slot already.
	ApplyOnly bool `json:"apply_only,omitempty"`
	// AskBeforeWrite has the worker ask the daemon before it writes a slot
	// (engine.Config.BeforeWrite).
	AskBeforeWrite bool `json:"ask_before_write,omitempty"`
	// Activate has the worker itself verify the new slot and make it the
	// next boot with Tries tries, through an in-process security service:
	// `upgraded --once --activate`, which has no D-Bus. The daemon's jobs
	// never set it; securityd decides what boots.
	Activate bool `json:"activate,omitempty"`
	Tries    int  `json:"tries,omitempty"`
}

// Event is one line on descriptor 3; exactly one field is set.
type Event struct {
	Progress    *report.Progress `json:"progress,omitempty"`
	BeforeWrite layout.Slot      `json:"before_write,omitempty"`
	Done        *Final           `json:"done,omitempty"`
}

// Final is the worker's last event: the outcome.
type Final struct {
	Result   *report.Result `json:"result,omitempty"`
	UpToDate bool           `json:"up_to_date,omitempty"`
	// Next is the next boot the job made (Request.Activate).
	Next  *Activated `json:"next,omitempty"`
	Error *Error     `json:"error,omitempty"`
}

// Activated is the slot a Request.Activate job made the next boot.
type Activated struct {
	Slot    layout.Slot    `json:"slot"`
	Version layout.Version `json:"version"`
}

// Answer is the daemon's reply to a before_write event.
type Answer struct {
	Error *Error `json:"error,omitempty"`
}

// Error is an error that crossed the pipe: its message and the errdefs
// classes it wrapped, so that errors.Is works on the other side.
type Error struct {
	Message string   `json:"message"`
	Classes []string `json:"classes,omitempty"`
}

// classes are the errors whose identity crosses the pipe, by their text.
var classes = []error{
	errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrBusy, errdefs.ErrUpToDate,
	errdefs.ErrNetwork, errdefs.ErrBadSignature, errdefs.ErrCorrupt, errdefs.ErrVerification,
	errdefs.ErrNoSpace, errdefs.ErrCancelled, errdefs.ErrNotAuthorized, errdefs.ErrUnsafePath,
	errdefs.ErrPolicy, errdefs.ErrTooLarge, errdefs.ErrDowngrade, errdefs.ErrFailedPrecondition,
	errdefs.ErrWorkerCrashed, context.Canceled, context.DeadlineExceeded,
}

// EncodeError is err for the pipe (nil for nil).
func EncodeError(err error) *Error {
	if err == nil {
		return nil
	}
	e := &Error{Message: err.Error()}
	for _, c := range classes {
		if errors.Is(err, c) {
			e.Classes = append(e.Classes, c.Error())
		}
	}
	return e
}

// Decode is the error again, wrapping the same classes (nil for nil).
func (e *Error) Decode() error {
	if e == nil {
		return nil
	}
	r := &remoteError{msg: e.Message}
	for _, name := range e.Classes {
		for _, c := range classes {
			if c.Error() == name {
				r.classes = append(r.classes, c)
			}
		}
	}
	return r
}

type remoteError struct {
	msg     string
	classes []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.classes }
