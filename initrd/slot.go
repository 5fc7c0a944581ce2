package initrd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// chooseSlot reads the boot pointer on the mounted root, decides, and writes
// the pointer back when the decision says so — before the switch, so a boot
// that hangs after this point has already used its try.
func chooseSlot(s *State) error {
	root := layout.Root{Dir: s.NewRoot()}
	p, readErr := bootptr.Read(root.BootPointer())
	exists := func(sl layout.Slot) bool {
		fi, err := os.Stat(root.Slot(sl))
		return err == nil && fi.IsDir()
	}
	if k := s.Cmdline.KexecSlot; k != "" {
		// The start before this one decided, paid the try and kexecd
		// this kernel: deciding again would pay a second try.
		if (k == "a" || k == "b") && exists(k) {
			s.Decision = bootptr.Decision{Boot: k, Reason: "chosen before the kexec; " + KexecParam + " on the command line"}
			s.logf("booting slot %s (%s)", k, s.Decision.Reason)
			return nil
		}
		s.logf("ignoring %s=%s: no such slot", KexecParam, k)
	}
	current, _ := root.CurrentSlot() // "" when current names no slot: Decide puts any choice on trial
	d := bootptr.Decide(p, readErr, s.Cmdline.Slot, current, exists)
	if d.Boot == "" {
		return fmt.Errorf("no bootable slot: %s: %w", d.Reason, errdefs.ErrNotFound)
	}
	if d.Write {
		err := s.makeWritable()
		if err == nil {
			err = bootptr.Write(root.BootPointer(), d.New)
		}
		if err != nil {
			// Booting a trial whose try could not be recorded could loop
			// forever; boot the good slot instead. Any other write (a fresh
			// pointer, a fallback) only records a decision that is already
			// safe, so the boot goes on and the next one retries.
			s.logf("WARNING: cannot write boot pointer: %v", err)
			if d.New.Trial && exists(p.Good) {
				d = bootptr.Decision{Boot: p.Good, Reason: fmt.Sprintf("%s; try not recorded, booting good %s", d.Reason, p.Good)}
			}
		}
	}
	s.Decision = d
	s.logf("booting slot %s (%s)", d.Boot, d.Reason)
	return nil
}

// SetCurrent points R/current at slot, only when it does not already: a
// normal boot writes nothing. The new link is made at a temp name and
// renamed over the old one, so current is never missing and never a link
// placed inside the old target (the "mv" mistake): rename(2) replaces the
// symlink itself and refuses to replace a directory. Then the directory is
// fsynced so the swing survives a power cut.
func SetCurrent(root layout.Root, slot layout.Slot) (changed bool, err error) {
	cur := root.Current()
	if t, err := os.Readlink(cur); err == nil && t == string(slot) {
		return false, nil
	}
	tmp := filepath.Join(root.Dir, ".current.tmp-"+strconv.Itoa(os.Getpid()))
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.Symlink(string(slot), tmp); err != nil {
		return false, err
	}
	if fi, err := os.Lstat(cur); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		os.Remove(tmp)
		return false, fmt.Errorf("%s is a %v, not a symlink; refusing to replace it: %w", cur, fi.Mode().Type(), errdefs.ErrFailedPrecondition)
	}
	if err := os.Rename(tmp, cur); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, atomicfile.SyncDir(root.Dir)
}

func setCurrent(s *State) error {
	root := layout.Root{Dir: s.NewRoot()}
	if t, err := os.Readlink(root.Current()); err == nil && t == string(s.Decision.Boot) {
		return nil // the usual boot: nothing to write, so no remount
	}
	if err := s.makeWritable(); err != nil {
		return err
	}
	changed, err := SetCurrent(root, s.Decision.Boot)
	if err != nil {
		return err
	}
	if changed {
		s.logf("current -> %s", s.Decision.Boot)
	}
	return nil
}
