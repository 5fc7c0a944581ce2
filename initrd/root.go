package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// findRoot resolves root= to a device node, waiting a bounded time for it.
func findRoot(s *State) error {
	spec, err := ParseRoot(s.Cmdline.Root)
	if err != nil {
		return err
	}
	start := time.Now()
	dev, err := waitDevice(s.Prefix, spec, s.Cmdline.Wait())
	s.DeviceWait = time.Since(start)
	if err != nil {
		return err
	}
	s.RootDev = dev
	return nil
}

// mountRoot mounts the root device read-write at NewRoot: the pointer and
// the current link may need writing. "ro" on the command line is honoured
// by the remount-ro step after those writes.
func mountRoot(s *State) error {
	if err := os.MkdirAll(s.NewRoot(), 0o755); err != nil {
		return err
	}
	types := []string{s.Cmdline.RootFSType}
	if types[0] == "" {
		types = candidateFSTypes(s.Prefix)
	}
	var errs []error
	for _, t := range types {
		err := unix.Mount(s.RootDev, s.NewRoot(), t, 0, s.Cmdline.RootFlags)
		if err == nil {
			s.RootFSType = t
			return nil
		}
		errs = append(errs, fmt.Errorf("mount -t %s %s: %w", t, s.RootDev, err))
	}
	return errors.Join(errs...)
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
// synced.
func remountReadOnly(s *State) error {
	if !s.Cmdline.ReadOnly {
		return nil
	}
	unix.Sync()
	return unix.Mount("", s.NewRoot(), "", unix.MS_REMOUNT|unix.MS_RDONLY, s.Cmdline.RootFlags)
}
