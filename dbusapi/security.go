package dbusapi

import (
	"context"
	"fmt"
	"slices"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/security"
)

// SecurityServer exports security.Service. Every method checks the caller's
// uid in code as well as through the bus policy file: defence in depth.
type SecurityServer struct {
	conn    *dbus.Conn
	svc     *security.Service
	allowed []uint32 // uids besides root (the daemon's user)
}

// ExportSecurity exports the service on conn and then claims its name.
func ExportSecurity(conn *dbus.Conn, svc *security.Service, allowedUIDs []uint32) (*SecurityServer, error) {
	s := &SecurityServer{conn: conn, svc: svc, allowed: allowedUIDs}
	methods := map[string]any{
		"Verify":     s.verify,
		"Activate":   s.activate,
		"Invalidate": s.invalidate,
		"MarkGood":   s.markGood,
		"Rollback":   s.rollback,
		"GetPointer": s.getPointer,
	}
	if err := conn.ExportMethodTable(methods, SecurityPath, SecurityIface); err != nil {
		return nil, err
	}
	intro, err := introspectable(SecurityXML, false)
	if err != nil {
		return nil, err
	}
	if err := conn.Export(intro, SecurityPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, err
	}
	return s, requestName(conn, SecurityName)
}

func (s *SecurityServer) auth(sender dbus.Sender) *dbus.Error {
	uid, err := senderUID(s.conn, sender)
	if err != nil {
		return ToDBus(fmt.Errorf("identify caller %s: %v: %w", sender, err, errdefs.ErrNotAuthorized))
	}
	if uid == 0 || slices.Contains(s.allowed, uid) {
		return nil
	}
	return ToDBus(fmt.Errorf("uid %d may not call the security service: %w", uid, errdefs.ErrNotAuthorized))
}

func parseSlot(s string) (layout.Slot, *dbus.Error) {
	sl, err := layout.ParseSlot(s)
	if err != nil {
		return "", ToDBus(err)
	}
	return sl, nil
}

func (s *SecurityServer) verify(sender dbus.Sender, slot string) (uint64, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return 0, e
	}
	sl, e := parseSlot(slot)
	if e != nil {
		return 0, e
	}
	got, err := s.svc.Verify(context.Background(), sl)
	return got.Version, ToDBus(err)
}

func (s *SecurityServer) activate(sender dbus.Sender, slot string, tries uint32) (uint64, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return 0, e
	}
	sl, e := parseSlot(slot)
	if e != nil {
		return 0, e
	}
	got, err := s.svc.Activate(context.Background(), sl, int(tries))
	return got.Version, ToDBus(err)
}

func (s *SecurityServer) invalidate(sender dbus.Sender, slot string) *dbus.Error {
	if e := s.auth(sender); e != nil {
		return e
	}
	sl, e := parseSlot(slot)
	if e != nil {
		return e
	}
	return ToDBus(s.svc.Invalidate(sl))
}

func (s *SecurityServer) markGood(sender dbus.Sender) (string, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return "", e
	}
	sl, err := s.svc.MarkGood()
	return string(sl), ToDBus(err)
}

func (s *SecurityServer) rollback(sender dbus.Sender) (string, uint64, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return "", 0, e
	}
	got, err := s.svc.Rollback(context.Background())
	return string(got.Slot), got.Version, ToDBus(err)
}

func (s *SecurityServer) getPointer(sender dbus.Sender) (map[string]dbus.Variant, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return nil, e
	}
	p, err := s.svc.Pointer()
	if err != nil {
		return nil, ToDBus(err)
	}
	return map[string]dbus.Variant{
		"next":   dbus.MakeVariant(string(p.Next)),
		"good":   dbus.MakeVariant(string(p.Good)),
		"trial":  dbus.MakeVariant(p.Trial),
		"tries":  dbus.MakeVariant(uint32(p.Tries)),
		"failed": dbus.MakeVariant(string(p.Failed)),
		"seq":    dbus.MakeVariant(p.Seq),
	}, nil
}

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
	switch authzDBusErrorName(err) {
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
