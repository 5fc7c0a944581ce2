// Package dbusapi is the D-Bus contract of the upgrade daemon and the
// security service: names, introspection, the clients, and the one place
// where the project's error classes (package errdefs) become
// org.laptop.Upgrade1.Error.* names and back. The servers live beside
// their services (daemon/bus, security/bus), so that a client links
// neither.
package dbusapi

import (
	"context"
	"errors"
	"strings"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/errdefs"
)

// Bus names, object paths and interfaces (public contract, DESIGN.md).
const (
	UpgradeName      = "org.laptop.Upgrade1"
	UpgradePath      = dbus.ObjectPath("/org/laptop/Upgrade1")
	UpgradeInterface = "org.laptop.Upgrade1"
	SecurityName     = "org.laptop.Security1"
	SecurityPath     = dbus.ObjectPath("/org/laptop/Security1")
	SecurityIface    = "org.laptop.Security1"
	ErrorPrefix      = "org.laptop.Upgrade1.Error."
)

// Polkit action ids (systemd/polkit/org.laptop.upgrade.policy).
const (
	ActionCheck    = "org.laptop.upgrade.check"
	ActionUpgrade  = "org.laptop.upgrade.upgrade"
	ActionRollback = "org.laptop.upgrade.rollback"
	// ActionUpgradeOther: installing a version other than the newest (a
	// build a newer one fixed, perhaps), which allow_active must not grant.
	ActionUpgradeOther = "org.laptop.upgrade.upgrade-other"
)

// Error names.
const (
	ErrBusy          = ErrorPrefix + "Busy"
	ErrNotAuthorized = ErrorPrefix + "NotAuthorized"
	ErrUpToDate      = ErrorPrefix + "UpToDate"
	ErrNetwork       = ErrorPrefix + "Network"
	ErrBadSignature  = ErrorPrefix + "BadSignature"
	ErrVerification  = ErrorPrefix + "Verification"
	ErrNoSpace       = ErrorPrefix + "NoSpace"
	ErrCancelled     = ErrorPrefix + "Cancelled"
	ErrInvalidArgs   = ErrorPrefix + "InvalidArgs"
	ErrNotFound      = ErrorPrefix + "NotFound"
	ErrCorrupt       = ErrorPrefix + "Corrupt"
	ErrPolicy        = ErrorPrefix + "Policy"
	ErrUnsafePath    = ErrorPrefix + "UnsafePath"
	ErrTooLarge      = ErrorPrefix + "TooLarge"
	ErrPrecondition  = ErrorPrefix + "FailedPrecondition"
	ErrDowngrade     = ErrorPrefix + "Downgrade"
	ErrWorkerCrashed = ErrorPrefix + "WorkerCrashed"
	ErrFailed        = ErrorPrefix + "Failed"
)

var classes = []struct {
	err  error
	name string
}{
	{errdefs.ErrCancelled, ErrCancelled},
	{context.Canceled, ErrCancelled},
	{errdefs.ErrWorkerCrashed, ErrWorkerCrashed},
	{errdefs.ErrBusy, ErrBusy},
	{errdefs.ErrNotAuthorized, ErrNotAuthorized},
	{errdefs.ErrUpToDate, ErrUpToDate},
	{errdefs.ErrNoSpace, ErrNoSpace},
	{errdefs.ErrDowngrade, ErrDowngrade},
	{errdefs.ErrBadSignature, ErrBadSignature},
	{errdefs.ErrVerification, ErrVerification},
	{errdefs.ErrUnsafePath, ErrUnsafePath},
	{errdefs.ErrPolicy, ErrPolicy},
	{errdefs.ErrTooLarge, ErrTooLarge},
	{errdefs.ErrCorrupt, ErrCorrupt},
	{errdefs.ErrNetwork, ErrNetwork},
	{context.DeadlineExceeded, ErrNetwork},
	{errdefs.ErrInvalidArgument, ErrInvalidArgs},
	{errdefs.ErrNotFound, ErrNotFound},
	{errdefs.ErrFailedPrecondition, ErrPrecondition},
}

// ErrorName maps an error to its D-Bus error name ("" for nil).
func ErrorName(err error) string {
	if err == nil {
		return ""
	}
	if name := ReplyName(err); strings.HasPrefix(name, ErrorPrefix) {
		return name
	}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return ErrFailed
}

// ToDBus turns an error into the reply error a caller sees.
func ToDBus(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	return dbus.NewError(ErrorName(err), []any{errdefs.Message(err)})
}

// FromDBus maps a D-Bus error from the security service or the daemon back
// to the project's error classes, keeping the message.
func FromDBus(err error) error {
	de, ok := ReplyError(err)
	if !ok {
		return err
	}
	msg := de.Name
	if len(de.Body) > 0 {
		if s, ok := de.Body[0].(string); ok {
			msg = s
		}
	}
	for _, c := range classes {
		if c.name == de.Name {
			return &remoteError{msg: msg, class: c.err}
		}
	}
	return &remoteError{msg: msg, class: errors.New(de.Name)}
}

type remoteError struct {
	msg   string
	class error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.class }
