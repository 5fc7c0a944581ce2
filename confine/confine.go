// Package confine narrows, once at start-up, what the upgrade daemon's own
// process may write, with the Landlock LSM. The unit's mount sandbox cannot
// do it: the clone hard-links the running slot into the other one, and
// link(2) needs both on one writable mount, so mount flags cannot tell the
// slots apart. Landlock can, by path: the running slot is fixed for a boot
// (the initrd sets current), so the rules are decided once.
//
// What a confined process may still do, exactly (docs/systemd.md):
//   - beneath the state directory: everything (write, create, remove, link,
//     rename, truncate);
//   - beneath the inactive slot: create, remove, link and rename names, but
//     open no file for writing and truncate none: its files share inodes
//     with the running slot, so new content is written in the state
//     directory's scratch and renamed in (slotfs.SetScratch);
//   - beneath the running slot: be the source of a hard link (Landlock's
//     "refer"), nothing else;
//   - anywhere else: no writing at all. Reading is left to the unit.
//
// Landlock does not cover chmod, chown, setxattr and utimes; those stay
// limited by the mounts and the capabilities alone.
package confine

import (
	"errors"
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// Mode says what to do when the kernel cannot confine.
type Mode string

const (
	// Off never confines (a debugging aid).
	Off Mode = "off"
	// Auto confines when the kernel has Landlock ABI 2 or later and
	// otherwise runs unconfined, saying so.
	Auto Mode = "auto"
	// Required refuses to run unconfined (the shipped unit).
	Required Mode = "required"
)

// ParseMode accepts off, auto or required.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Off, Auto, Required:
		return m, nil
	}
	return "", fmt.Errorf("confinement %q: want off, auto or required: %w", s, errdefs.ErrInvalidArgument)
}

// MinABI is the first Landlock ABI that can allow linking across
// directories (LANDLOCK_ACCESS_FS_REFER); under ABI 1 every cross-directory
// link or rename fails, so the clone could not run.
const MinABI = 2

// Syscalls are the system calls Apply makes beyond @system-service; the
// unit's SystemCallFilter= must allow them (systemd 252 lists them only
// in @known).
var Syscalls = []string{"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"}

// Access rights. Only what writes is handled: what is not handled stays
// allowed everywhere (reading, executing, device ioctls, connecting to
// sockets), so the unit's mount namespace decides those.
const (
	names = ll.AccessFSMakeReg | ll.AccessFSMakeDir | ll.AccessFSMakeSym | ll.AccessFSMakeChar |
		ll.AccessFSMakeBlock | ll.AccessFSMakeFifo | ll.AccessFSMakeSock |
		ll.AccessFSRemoveFile | ll.AccessFSRemoveDir | ll.AccessFSRefer
	contents = ll.AccessFSWriteFile | ll.AccessFSTruncate // truncate: ABI 3
)

// Rules are the file hierarchies a confined process may change, by what
// it may do there.
type Rules struct {
	Write    []string // names and contents
	Names    []string // names only
	LinkFrom []string // only as the source of a link or rename elsewhere
	NoSlot   error    // why no slot is in the rules (a broken root), or nil
}

// ForDaemon returns the rules of an upgrade daemon on root r: its state
// directory (plus extra, e.g. the security service's directory for an
// in-process activation) writable, the inactive slot for names, the
// running slot as the clone's source. The running slot comes from
// r/current. Directories that must exist for a rule (the inactive slot,
// the state directory) are created here, before confinement, as the
// engine would create them. On a broken root (current naming no slot, a
// slot that is not a directory) no slot is writable, and NoSlot says why:
// every job fails on such a root anyway, and the daemon still answers on
// the bus.
func ForDaemon(r layout.Root, extra ...string) (Rules, error) {
	if err := os.MkdirAll(r.StateDir(), 0755); err != nil {
		return Rules{}, fmt.Errorf("state directory: %w", err)
	}
	rules := Rules{Write: append([]string{r.StateDir()}, extra...)}
	active, err := r.CurrentSlot()
	if err != nil {
		rules.NoSlot = err
		return rules, nil
	}
	inactive := active.Other()
	if err := os.Mkdir(r.Slot(inactive), 0755); err != nil && !errors.Is(err, os.ErrExist) {
		return Rules{}, fmt.Errorf("create slot %s: %w", inactive, err)
	}
	for _, s := range []layout.Slot{active, inactive} {
		// A rule follows symlinks: a slot linked elsewhere would open
		// that elsewhere to writing.
		if st, err := os.Lstat(r.Slot(s)); err != nil || !st.IsDir() {
			rules.NoSlot = fmt.Errorf("slot %s (%s) is not a directory: %w", s, r.Slot(s), errdefs.ErrFailedPrecondition)
			return rules, nil
		}
	}
	rules.Names = []string{r.Slot(inactive)}
	rules.LinkFrom = []string{r.Slot(active)}
	return rules, nil
}

// Result says what Apply did.
type Result struct {
	ABI      int  // the kernel's Landlock ABI (0: none)
	Enforced bool // the rules are in force on every thread
	Reason   string
}

func (r Result) String() string {
	if r.Enforced {
		return fmt.Sprintf("confined by Landlock ABI %d", r.ABI)
	}
	return "NOT confined: " + r.Reason
}

// Apply confines every thread of the process (and all it starts later)
// to rules. With Auto, a kernel without usable Landlock gives an
// unconfined Result and no error; with Required, an error.
func Apply(rules Rules, mode Mode) (Result, error) {
	if mode == Off {
		return Result{Reason: "confinement is off"}, nil
	}
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < MinABI {
		res := Result{ABI: abi, Reason: fmt.Sprintf("the kernel offers Landlock ABI %d, %d or later is needed", abi, MinABI)}
		if err != nil {
			res.ABI, res.Reason = 0, fmt.Sprintf("the kernel has no Landlock (%v)", err)
		}
		if mode == Required {
			return res, fmt.Errorf("confinement required but %s: %w", res.Reason, errdefs.ErrFailedPrecondition)
		}
		return res, nil
	}
	handled := landlock.AccessFSSet(names | ll.AccessFSWriteFile)
	if abi >= 3 {
		handled |= ll.AccessFSTruncate
	}
	var fs []landlock.Rule
	add := func(access landlock.AccessFSSet, paths []string) {
		if len(paths) > 0 {
			fs = append(fs, landlock.PathAccess(access&handled, paths...))
		}
	}
	add(names|contents, rules.Write)
	add(names, rules.Names)
	add(ll.AccessFSRefer, rules.LinkFrom)
	cfg := landlock.Config{HandledAccessFS: handled}
	if err := cfg.RestrictPaths(fs...); err != nil {
		return Result{ABI: abi, Reason: err.Error()}, fmt.Errorf("landlock: %w", err)
	}
	return Result{ABI: abi, Enforced: true}, nil
}
