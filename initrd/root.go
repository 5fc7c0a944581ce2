package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// findRoot resolves root= to a device node, waiting a bounded time for it.
func findRoot(s *State) error {
	spec, err := ParseRoot(s.Cmdline.Root)
	if err != nil {
		return err
	}
	dev, w, err := waitDevice(s.Prefix, spec, s.Cmdline.Wait())
	s.DeviceWait, s.Wait = w.D, w
	if err != nil {
		return err
	}
	s.RootDev = dev
	return nil
}

// mountRoot mounts the root device at NewRoot: read-only when the command
// line says "ro" (the usual case), else read-write. A normal boot writes
// nothing, so with "ro" it never needs the root writable; choose-slot and
// set-current make it writable only for a write (makeWritable). That spares
// the synchronous superblock update of a read-write mount and the sync and
// remount of remount-ro, on every ordinary boot.
func mountRoot(s *State) error {
	if err := os.MkdirAll(s.NewRoot(), 0o755); err != nil {
		return err
	}
	types := []string{s.Cmdline.RootFSType}
	if types[0] == "" {
		types = candidateFSTypes(s.Prefix)
	}
	var flags uintptr
	if s.Cmdline.ReadOnly {
		flags = unix.MS_RDONLY
	}
	var errs []error
	for _, t := range types {
		err := unix.Mount(s.RootDev, s.NewRoot(), t, flags, s.Cmdline.RootFlags)
		if err == nil {
			s.RootFSType = t
			s.rootWritable = !s.Cmdline.ReadOnly
			return nil
		}
		errs = append(errs, fmt.Errorf("mount -t %s %s: %w", t, s.RootDev, err))
	}
	return errors.Join(errs...)
}

// makeWritable remounts the root read-write before the initrd's first
// write (a try consumed, a fallback recorded, current swung).
func (s *State) makeWritable() error {
	if s.rootWritable {
		return nil
	}
	if err := unix.Mount("", s.NewRoot(), "", unix.MS_REMOUNT, s.Cmdline.RootFlags); err != nil {
		return fmt.Errorf("remount %s read-write: %w", s.NewRoot(), err)
	}
	s.rootWritable = true
	return nil
}

// candidateFSTypes lists ext4 first (it also mounts ext2 and ext3), then
// every other block filesystem the kernel knows, as the kernel's own root
// mount does when rootfstype= is absent.
func candidateFSTypes(prefix string) []string {
	types := []string{"ext4"}
	f, err := os.Open(prefix + "/proc/filesystems")
	if err != nil {
		return types
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "nodev") {
			continue
		}
		if t := strings.TrimSpace(sc.Text()); t != "" && t != "ext4" {
			types = append(types, t)
		}
	}
	return types
}

// remountReadOnly applies "ro" once the initrd's own writes are done and
// synced. A root that was never made writable is already read-only.
func remountReadOnly(s *State) error {
	if !s.Cmdline.ReadOnly || !s.rootWritable {
		return nil
	}
	fd, err := unix.Open(s.NewRoot(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.Syncfs(fd) // this filesystem only, not every mount
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("syncfs %s: %w", s.NewRoot(), err)
	}
	if err := unix.Mount("", s.NewRoot(), "", unix.MS_REMOUNT|unix.MS_RDONLY, s.Cmdline.RootFlags); err != nil {
		return err
	}
	s.rootWritable = false
	return nil
}
