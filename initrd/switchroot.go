package initrd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// switchRoot makes NewRoot the root, as u-root's pkg/mount does it: chdir
// into the new root, keep a handle on the old one, move the new root onto
// "/", chroot("."), then free the initramfs (it is RAM the running system
// would never get back) without crossing into other filesystems.
func switchRoot(s *State) error {
	if err := unix.Chdir(s.NewRoot()); err != nil {
		return fmt.Errorf("chdir %s: %w", s.NewRoot(), err)
	}
	old, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(old)
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s onto /: %w", s.NewRoot(), err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	// Only an initramfs (ramfs or tmpfs) is emptied; a mistake here must
	// never delete files on a disk.
	var st unix.Statfs_t
	if err := unix.Fstatfs(old, &st); err != nil {
		return fmt.Errorf("statfs old root: %w", err)
	}
	if st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC {
		s.logf("old root is not an initramfs (fs type %#x); leaving it", st.Type)
		return nil
	}
	var oldStat unix.Stat_t
	if err := unix.Fstat(old, &oldStat); err != nil {
		return err
	}
	if err := deleteTree(old, oldStat.Dev); err != nil {
		// Past the point of no return: the new root is in place. Leftover
		// initramfs files cost RAM, not correctness.
		s.logf("WARNING: freeing initramfs: %v", err)
	}
	return nil
}

// deleteTree removes everything under the directory fd that lives on dev.
func deleteTree(dirfd int, dev uint64) error {
	// Readdirnames closes what it reads from; hand it a duplicate.
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "initramfs")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Dev != dev {
			continue // a mount point: not ours to empty
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, deleteTree(sub, dev))
			unix.Close(sub)
			if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.EBUSY) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", filepath.Join("/", name), err))
			}
			continue
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil {
			errs = append(errs, fmt.Errorf("unlink %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// DefaultInits are tried in order when init= is absent, as the kernel does.
var DefaultInits = []string{"/sbin/init", "/etc/init", "/bin/init"}

// execInit replaces /init with the real init. It only returns on failure.
func execInit(s *State) error {
	inits := DefaultInits
	if s.Cmdline.Init != "" {
		inits = []string{s.Cmdline.Init}
	}
	s.report(s.since())
	var errs []error
	for _, p := range inits {
		argv := append([]string{p}, s.Cmdline.InitArgs...)
		err := unix.Exec(p, argv, os.Environ())
		errs = append(errs, fmt.Errorf("exec %s: %w", p, err))
	}
	return errors.Join(errs...)
}
