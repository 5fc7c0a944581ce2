package security

import (
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// inodeState is what any change to an entry moves: a write, chmod, chown,
// xattr or link count change sets the ctime (which no unprivileged process
// can set back), a replacement changes the inode, an entry added to or
// removed from a directory changes the directory's ctime.
type inodeState struct {
	Ino, Nlink uint64
	Ctime      unix.Timespec
	Size       int64
	Mode       uint32
}

// treeState records every entry under dir, not following symlinks.
func treeState(dir string) (map[string]inodeState, error) {
	out := map[string]inodeState{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		out[p] = inodeState{Ino: st.Ino, Nlink: uint64(st.Nlink), Ctime: st.Ctim, Size: st.Size, Mode: st.Mode}
		return nil
	})
	return out, err
}

// beforeRecheck is a test hook: it runs after the verification and the
// syncfs, where a writer racing the security service must be caught.
var beforeRecheck func(sl layout.Slot)

// recheck narrows the window between verification and the pointer write:
// the slot's state, recorded before the verification began, must be the
// same after its syncfs, immediately before the pointer is written. A
// change in between (the upgrade daemon still writing, or a compromised
// one racing the check) refuses the activation.
func (s *Service) recheck(sl layout.Slot, before map[string]inodeState) error {
	if beforeRecheck != nil {
		beforeRecheck(sl)
	}
	after, err := treeState(s.Root.Slot(sl))
	if err != nil {
		return fmt.Errorf("slot %s: recheck: %v: %w", sl, err, errdefs.ErrVerification)
	}
	if !maps.Equal(before, after) {
		for p, st := range after {
			if b, ok := before[p]; !ok || b != st {
				return fmt.Errorf("slot %s: %s changed while it was verified: %w", sl, p, errdefs.ErrVerification)
			}
		}
		return fmt.Errorf("slot %s: an entry was removed while it was verified: %w", sl, errdefs.ErrVerification)
	}
	return nil
}
