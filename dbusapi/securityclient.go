package dbusapi

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// SecurityClient calls the security service for the daemon.
type SecurityClient struct{ obj dbus.BusObject }

// NewSecurityClient talks to org.laptop.Security1 over conn.
func NewSecurityClient(conn *dbus.Conn) *SecurityClient {
	return &SecurityClient{obj: conn.Object(SecurityName, SecurityPath)}
}

func (c *SecurityClient) call(ctx context.Context, method string, args []any, out ...any) error {
	call := c.obj.CallWithContext(ctx, SecurityIface+"."+method, 0, args...)
	switch {
	case call.Err == nil:
		return call.Store(out...)
	case ctx.Err() != nil:
		return fmt.Errorf("%s.%s: %w", SecurityName, method, ctx.Err())
	case securityUnavailable(call.Err):
		// Not a refusal: the service is not running, crashed or hung.
		return fmt.Errorf("the security service (%s) is not running or did not answer %s: %v: %w",
			SecurityName, method, call.Err, errdefs.ErrFailedPrecondition)
	}
	return FromDBus(call.Err)
}

// securityUnavailable tells the bus's "nobody answered" errors (and a lost
// connection) from answers of the security service.
func securityUnavailable(err error) bool {
	switch ReplyName(err) {
	case "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.ServiceUnknown",
		"org.freedesktop.DBus.Error.NameHasNoOwner", "org.freedesktop.DBus.Error.Disconnected",
		"org.freedesktop.DBus.Error.Timeout", "org.freedesktop.DBus.Error.TimedOut":
		return true
	case "":
		return true // not a D-Bus error reply: the connection failed
	}
	return false
}

// Activate verifies slot and makes it the next boot on trial.
func (c *SecurityClient) Activate(ctx context.Context, slot layout.Slot, tries int) (uint64, error) {
	var v uint64
	err := c.call(ctx, "Activate", []any{string(slot), uint32(tries)}, &v)
	return v, err
}

// Invalidate keeps the boot pointer away from slot.
func (c *SecurityClient) Invalidate(ctx context.Context, slot layout.Slot) error {
	return c.call(ctx, "Invalidate", []any{string(slot)})
}

// Rollback boots the other slot next, if it verifies.
func (c *SecurityClient) Rollback(ctx context.Context) (layout.Slot, uint64, error) {
	var s string
	var v uint64
	err := c.call(ctx, "Rollback", nil, &s, &v)
	return layout.Slot(s), v, err
}

// Pointer reads the boot pointer.
func (c *SecurityClient) Pointer(ctx context.Context) (bootptr.Pointer, error) {
	var m map[string]dbus.Variant
	if err := c.call(ctx, "GetPointer", nil, &m); err != nil {
		return bootptr.Pointer{}, err
	}
	var p bootptr.Pointer
	s := func(k string) string { v, _ := m[k].Value().(string); return v }
	p.Next, p.Good, p.Failed = layout.Slot(s("next")), layout.Slot(s("good")), layout.Slot(s("failed"))
	p.Trial, _ = m["trial"].Value().(bool)
	tries, _ := m["tries"].Value().(uint32)
	p.Tries = int(tries)
	p.Seq, _ = m["seq"].Value().(uint64)
	return p, nil
}
