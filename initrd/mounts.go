package initrd

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Mount is one mount(2) call, relative to State.Prefix, with the directory
// it needs. A table of them (rather than code) is the plan a test can read
// without root, as in u-root's libinit.
type Mount struct {
	Source string
	Target string // relative to the prefix, e.g. "proc"
	FSType string
	Flags  uintptr
	Data   string
}

func (m Mount) String() string {
	s := fmt.Sprintf("mount -t %s %s /%s", m.FSType, m.Source, m.Target)
	if m.Data != "" {
		s += " -o " + m.Data
	}
	return s
}

// EarlyMounts are the kernel filesystems /init needs and then hands to the
// real init by moving them, so that it starts with the same /dev, /proc,
// /sys and /run it would have mounted itself. /run lets the real init find
// what the initrd left there.
var EarlyMounts = []Mount{
	{Source: "proc", Target: "proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "sysfs", Target: "sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "devtmpfs", Target: "dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	{Source: "tmpfs", Target: "run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
}

func (m Mount) mount(prefix string) error {
	target := filepath.Join(prefix, m.Target)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(m.Source, target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	return nil
}

func mountEarly(s *State) error {
	for _, m := range EarlyMounts {
		if err := m.mount(s.Prefix); err != nil {
			return err
		}
	}
	return nil
}

// moveMounts moves the early mounts under the new root: after switch_root
// the old paths are gone, and mounting them afresh would lose the devices
// devtmpfs already holds.
func moveMounts(s *State) error {
	for _, m := range EarlyMounts {
		from := filepath.Join(s.Prefix, m.Target)
		to := filepath.Join(s.NewRoot(), m.Target)
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(from, to, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to %s: %w", from, to, err)
		}
	}
	return nil
}
