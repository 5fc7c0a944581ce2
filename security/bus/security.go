// Package bus serves org.laptop.Security1: the security service's D-Bus
// server, beside the service it exports, so that securityd links only
// this, package security and the contract in dbusapi.
package bus

import (
	"context"
	"fmt"
	"slices"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/security"
)

// Server exports security.Service. Every method checks the caller's
// uid in code as well as through the bus policy file: defence in depth.
type Server struct {
	conn    *dbus.Conn
	svc     *security.Service
	allowed []uint32 // uids besides root (the daemon's user)
}

// Export exports the service on conn and then claims its name.
func Export(conn *dbus.Conn, svc *security.Service, allowedUIDs []uint32) (*Server, error) {
	s := &Server{conn: conn, svc: svc, allowed: allowedUIDs}
	methods := map[string]any{
		"Verify":     s.verify,
		"Activate":   s.activate,
		"Invalidate": s.invalidate,
		"MarkGood":   s.markGood,
		"Rollback":   s.rollback,
		"GetPointer": s.getPointer,
	}
	if err := conn.ExportMethodTable(methods, dbusapi.SecurityPath, dbusapi.SecurityIface); err != nil {
		return nil, err
	}
	intro, err := dbusapi.Introspectable(dbusapi.SecurityXML, false)
	if err != nil {
		return nil, err
	}
	if err := conn.Export(intro, dbusapi.SecurityPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, err
	}
	return s, dbusapi.RequestName(conn, dbusapi.SecurityName)
}

func (s *Server) auth(sender dbus.Sender) *dbus.Error {
	uid, err := dbusapi.SenderUID(context.Background(), s.conn, sender)
	if err != nil {
		return dbusapi.ToDBus(fmt.Errorf("identify caller %s: %v: %w", sender, err, errdefs.ErrNotAuthorized))
	}
	if uid == 0 || slices.Contains(s.allowed, uid) {
		return nil
	}
	return dbusapi.ToDBus(fmt.Errorf("uid %d may not call the security service: %w", uid, errdefs.ErrNotAuthorized))
}

func parseSlot(s string) (layout.Slot, *dbus.Error) {
	sl, err := layout.ParseSlot(s)
	if err != nil {
		return "", dbusapi.ToDBus(err)
	}
	return sl, nil
}

func (s *Server) verify(sender dbus.Sender, slot string) (uint64, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return 0, e
	}
	sl, e := parseSlot(slot)
	if e != nil {
		return 0, e
	}
	got, err := s.svc.Verify(context.Background(), sl)
	return got.Version, dbusapi.ToDBus(err)
}

func (s *Server) activate(sender dbus.Sender, slot string, tries uint32) (uint64, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return 0, e
	}
	sl, e := parseSlot(slot)
	if e != nil {
		return 0, e
	}
	got, err := s.svc.Activate(context.Background(), sl, int(tries))
	return got.Version, dbusapi.ToDBus(err)
}

func (s *Server) invalidate(sender dbus.Sender, slot string) *dbus.Error {
	if e := s.auth(sender); e != nil {
		return e
	}
	sl, e := parseSlot(slot)
	if e != nil {
		return e
	}
	return dbusapi.ToDBus(s.svc.Invalidate(sl))
}

func (s *Server) markGood(sender dbus.Sender) (string, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return "", e
	}
	sl, err := s.svc.MarkGood()
	return string(sl), dbusapi.ToDBus(err)
}

func (s *Server) rollback(sender dbus.Sender) (string, uint64, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return "", 0, e
	}
	got, err := s.svc.Rollback(context.Background())
	return string(got.Slot), got.Version, dbusapi.ToDBus(err)
}

func (s *Server) getPointer(sender dbus.Sender) (map[string]dbus.Variant, *dbus.Error) {
	if e := s.auth(sender); e != nil {
		return nil, e
	}
	p, err := s.svc.Pointer()
	if err != nil {
		return nil, dbusapi.ToDBus(err)
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
