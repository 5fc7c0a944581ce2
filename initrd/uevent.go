package initrd

import (
	"time"

	"golang.org/x/sys/unix"
)

// uevents is a NETLINK_KOBJECT_UEVENT socket: the kernel sends a message on
// it for every device added, which is what udev listens to. /init only uses
// it as a wake-up: the content is not parsed, the next scan of sysfs decides.
// Without the socket (a kernel without netlink, or a sandbox refusing it)
// the wait degrades to a fine poll.
type uevents struct{ fd int }

const (
	// ueventBackstop bounds a sleep on the socket: the kernel drops
	// uevents when the socket's buffer is full, and a missed event must
	// cost at most this much.
	ueventBackstop = 50 * time.Millisecond
	// pollTick is the poll interval without the socket: fine enough that
	// the wait adds little to the boot, coarse enough to leave the CPU to
	// the probing driver.
	pollTick = 2 * time.Millisecond
)

func openUevents() uevents {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return uevents{fd: -1}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return uevents{fd: -1}
	}
	return uevents{fd: fd}
}

func (u uevents) tick() time.Duration {
	if u.fd < 0 {
		return pollTick
	}
	return ueventBackstop
}

// wait returns when a uevent arrives or d has passed, and drains what is
// queued: one rescan covers any number of events.
func (u uevents) wait(d time.Duration) {
	if u.fd < 0 {
		time.Sleep(d)
		return
	}
	fds := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLIN}}
	ms := int(d.Milliseconds())
	if ms < 1 {
		ms = 1
	}
	if n, err := unix.Poll(fds, ms); err != nil || n == 0 {
		return
	}
	buf := make([]byte, 8192)
	for {
		if _, err := unix.Read(u.fd, buf); err != nil { // EAGAIN: drained (the socket is non-blocking)
			return
		}
	}
}

func (u uevents) close() {
	if u.fd >= 0 {
		unix.Close(u.fd)
	}
}
