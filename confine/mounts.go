package confine

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// CheckMounts says, before any job, whether the slots and the state
// directory are on one mount, as an upgrade needs: the clone links from
// one slot into the other and new files are renamed from the state
// directory's scratch into the slot, and both fail with EXDEV across
// mounts, even on one filesystem. A sandbox that bind-mounts one of them
// (ReadWritePaths=, StateDirectory=; docs/systemd.md) or a separate /var
// partition does that. Missing paths are not checked.
func CheckMounts(r layout.Root) error {
	type mnt struct {
		path string
		id   uint64
	}
	var ms []mnt
	for _, p := range []string{r.Slot(layout.SlotA), r.Slot(layout.SlotB), r.StateDir()} {
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
			continue
		}
		if st.Mask&unix.STATX_MNT_ID == 0 { // before Linux 5.8: cannot tell
			return nil
		}
		ms = append(ms, mnt{p, st.Mnt_id})
	}
	for _, m := range ms[min(1, len(ms)):] {
		if m.id != ms[0].id {
			var l []string
			for _, m := range ms {
				l = append(l, fmt.Sprintf("%s (mount %d)", m.path, m.id))
			}
			return fmt.Errorf("the slots and the state directory are not on one mount: %s; the clone's links and the renames from %s into the slot will fail with EXDEV: %w",
				strings.Join(l, ", "), r.ScratchDir(), errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}
