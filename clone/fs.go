package clone

import (
	"fmt"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/dirwalk"
	"laptop.org/upgrade/errdefs"
)

// removeAt removes name (st is its lstat) from directory dfd, recursing into
// directories by fd without following symlinks and refusing to cross into
// another filesystem (dev is the slot's). It returns how many names it
// removed. Only unlinkat is used: removing a name never changes the content
// or metadata that another slot sees through a shared inode.
func removeAt(dfd int, name string, st *unix.Stat_t, dev uint64) (int, error) {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dfd, name, 0); err != nil && err != unix.ENOENT {
			return 0, fmt.Errorf("unlink %s: %w", name, err)
		}
		return 1, nil
	}
	if st.Dev != dev {
		return 0, fmt.Errorf("%s is another filesystem: %w", name, errdefs.ErrUnsafePath)
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", name, err)
	}
	names, err := dirwalk.ReadNames(fd)
	n := 0
	for _, c := range names {
		if err != nil {
			break
		}
		var cst unix.Stat_t
		if err = unix.Fstatat(fd, c, &cst, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
			err = nil
			continue
		} else if err != nil {
			break
		}
		var k int
		k, err = removeAt(fd, c, &cst, dev)
		n += k
	}
	unix.Close(fd)
	if err != nil {
		return n, fmt.Errorf("%s/%w", name, err)
	}
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return n, fmt.Errorf("rmdir %s: %w", name, err)
	}
	return n + 1, nil
}
