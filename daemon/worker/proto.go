// Package worker runs one job (an upgrade or a check) of the upgrade daemon
// in a process of its own, as systemd-sysupdated does: the daemon stays
// small and answers D-Bus at once, and the job's priority, memory and
// crashes are the worker's alone. The worker is the daemon's own binary in
// worker mode (Serve); the daemon starts it with Runner.
//
// The protocol is JSON, one value per line. The daemon writes the Request
// to the worker's stdin, then the answers to its questions. The worker
// writes events to file descriptor 3: progress, a question (may slot X be
// written now? the daemon asks the security service), and last the
// outcome. A worker that ends without an outcome has crashed
// (errdefs.ErrWorkerCrashed). A worker whose stdin closes (the daemon died)
// cancels its job, which stays resumable.
//
// It must never talk to D-Bus or the service manager: everything outside
// the engine goes through the daemon.
package worker

import (
	"context"
	"errors"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
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
}

// event is one line on descriptor 3; exactly one field is set.
type event struct {
	Progress    *engine.Progress `json:"progress,omitempty"`
	BeforeWrite layout.Slot      `json:"before_write,omitempty"`
	Done        *outcome         `json:"done,omitempty"`
}

// outcome is the worker's last event.
type outcome struct {
	Result   *engine.Result `json:"result,omitempty"`
	UpToDate bool           `json:"up_to_date,omitempty"`
	Error    *Error         `json:"error,omitempty"`
}

// answer is the daemon's reply to a before_write event.
type answer struct {
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

// encodeError is err for the pipe (nil for nil).
func encodeError(err error) *Error {
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

// decode is the error again, wrapping the same classes (nil for nil).
func (e *Error) decode() error {
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
