package initrd

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// FatalDelay is how long the console message stays up before the reboot:
// long enough to read or photograph, short enough that a machine stuck on a
// bad slot reaches its fallback quickly.
const FatalDelay = 5 * time.Second

// Main is /init. It never returns: either exec replaces it with the real
// init, or it reports the failure and reboots.
func Main() {
	s := &State{Prefix: "/", Console: os.Stdout, Start: time.Now()}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "upgrade-init: not PID 1; this is the initramfs init, refusing to run")
		os.Exit(2)
	}
	defer func() {
		if r := recover(); r != nil {
			fatal(s, fmt.Errorf("panic: %v", r))
		}
	}()
	fatal(s, Run(s, Plan()))
}

// fatal prints err, waits FatalDelay and reboots. The reboot, not a hang,
// is what makes boot counting work: the next boot consumes another try or
// falls back. If even the reboot fails, PID 1 sleeps forever rather than
// exit (an exiting PID 1 panics the kernel and loses the message).
func fatal(s *State, err error) {
	if err == nil {
		err = fmt.Errorf("boot plan ended without exec")
	}
	s.logf("FATAL: %v", err)
	s.logf("rebooting in %d s", int(FatalDelay/time.Second))
	time.Sleep(FatalDelay)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		s.logf("reboot: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
