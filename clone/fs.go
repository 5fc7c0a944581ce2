package clone

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
)

// resolve confines every path walk to the slot, like package slotfs: a
// directory swapped for a symlink (or a mount) fails instead of leading out.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openDir opens the directory rel ("" is the root) of the slot whose root fd
// is rootFD. We open our own fds rather than use slotfs.Root.Dir: its cache
// closes every fd when it fills up, under the feet of concurrent users.
func openDir(rootFD int, rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(rootFD, rel, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: resolve,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrUnsafePath)
		}
		return fd, err
	}
}

// readNames lists directory fd, sorted bytewise (the manifest's order, so
// the listing merges with a directory's children in one pass).
func readNames(fd int) ([]string, error) {
	d, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(d)
	f := os.NewFile(uintptr(d), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

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
	names, err := readNames(fd)
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

// typeName describes a stat's file type the way manifest.Type does.
func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %o", mode&unix.S_IFMT)
}

// readlinkAt reads the target of symlink name in dfd.
func readlinkAt(dfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}
