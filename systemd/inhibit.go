package systemd

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// logind's names, as in org.freedesktop.login1(5).
const (
	Login1Name    = "org.freedesktop.login1"
	Login1Path    = dbus.ObjectPath("/org/freedesktop/login1")
	Login1Manager = "org.freedesktop.login1.Manager"
)

// inhibitTimeout bounds one Inhibit call: logind answers at once, and an
// upgrade must not wait on a wedged logind.
const inhibitTimeout = 10 * time.Second

// Inhibitor holds a logind "block" inhibitor lock while it is acquired.
// logind keeps the lock as long as the file descriptor it returned stays
// open, so Release closes it; a crash closes it too, so a dead daemon never
// blocks shutdown. Acquire and Release are idempotent and safe for
// concurrent use. A zero Conn or a missing logind makes Acquire fail with an
// error that callers log and carry on: the upgrade is crash-safe anyway, the
// lock only spares it the interruption.
type Inhibitor struct {
	Conn *dbus.Conn
	What string // default "shutdown:sleep"
	Who  string // default "upgraded"
	Why  string // default "writing the next system version"

	mu sync.Mutex
	fd *os.File
}

// Acquire takes the lock if it is not held.
func (i *Inhibitor) Acquire(ctx context.Context) error {
	if i == nil {
		return nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.fd != nil {
		return nil
	}
	if i.Conn == nil {
		return fmt.Errorf("inhibit: no system bus")
	}
	what, who, why := or(i.What, "shutdown:sleep"), or(i.Who, "upgraded"), or(i.Why, "writing the next system version")
	ctx, cancel := context.WithTimeout(ctx, inhibitTimeout)
	defer cancel()
	var fd dbus.UnixFD
	err := i.Conn.Object(Login1Name, Login1Path).CallWithContext(ctx, Login1Manager+".Inhibit", 0, what, who, why, "block").Store(&fd)
	if err != nil {
		return fmt.Errorf("inhibit %s: %w", what, err)
	}
	i.fd = os.NewFile(uintptr(fd), "inhibitor")
	if i.fd == nil {
		return fmt.Errorf("inhibit %s: logind returned an invalid descriptor", what)
	}
	return nil
}

// Release drops the lock if it is held.
func (i *Inhibitor) Release() {
	if i == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.fd != nil {
		i.fd.Close()
		i.fd = nil
	}
}

// Held reports whether the lock is held.
func (i *Inhibitor) Held() bool {
	if i == nil {
		return false
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.fd != nil
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
