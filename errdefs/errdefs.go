// Package errdefs is the project's one vocabulary of error classes.
//
// Every package wraps one of these sentinels with %w and the operand
// (fmt.Errorf("object %s: %w", d, errdefs.ErrCorrupt)), so that callers can
// test the class with errors.Is and the D-Bus boundary (dbusapi) can map each
// class to exactly one org.laptop.Upgrade1.Error.* name. No other package
// decides how an error looks on the bus.
package errdefs

import "errors"

var (
	// ErrInvalidArgument: the caller (or a config file) asked for something malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: a version, object, slot or file that should exist does not.
	ErrNotFound = errors.New("not found")
	// ErrBusy: another job holds the resource (one upgrade at a time).
	ErrBusy = errors.New("busy")
	// ErrUpToDate: nothing newer than what runs is available.
	ErrUpToDate = errors.New("up to date")
	// ErrNetwork: no mirror could be reached or every mirror failed.
	ErrNetwork = errors.New("network error")
	// ErrBadSignature: signed metadata failed signature, key, expiry, channel or rollback checks.
	ErrBadSignature = errors.New("bad signature")
	// ErrCorrupt: data did not match the digest or size that signed metadata promised.
	ErrCorrupt = errors.New("corrupt data")
	// ErrVerification: a slot tree does not match its manifest.
	ErrVerification = errors.New("verification failed")
	// ErrNoSpace: not enough free bytes or inodes.
	ErrNoSpace = errors.New("not enough space")
	// ErrCancelled: the job was cancelled by a caller.
	ErrCancelled = errors.New("cancelled")
	// ErrNotAuthorized: the caller may not do this.
	ErrNotAuthorized = errors.New("not authorized")
	// ErrUnsafePath: a path from outside data would escape or misuse the slot.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrPolicy: the content is well-formed but forbidden by local policy (setuid, devices, channel, hardware).
	ErrPolicy = errors.New("forbidden by policy")
	// ErrTooLarge: outside data is larger than the limit signed metadata or local configuration allows.
	ErrTooLarge = errors.New("too large")
	// ErrDowngrade: a version not newer than the running one was refused (anti-rollback).
	ErrDowngrade = errors.New("downgrade refused")
	// ErrFailedPrecondition: the system is not in a state where the operation makes sense.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrWorkerCrashed: the process that ran a job ended without reporting a
	// result (killed, out of memory, a panic); the job's journal still lets
	// the next job resume it.
	ErrWorkerCrashed = errors.New("worker crashed")
)
