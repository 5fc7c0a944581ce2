package dbusapi

import (
	"context"
	_ "embed"
	"encoding/xml"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
)

//go:embed org.laptop.Upgrade1.xml
var UpgradeXML string

//go:embed org.laptop.Security1.xml
var SecurityXML string

// ParseInterface reads the first interface of an introspection document.
func ParseInterface(doc string) (introspect.Interface, error) {
	var n introspect.Node
	if err := xml.Unmarshal([]byte(doc), &n); err != nil {
		return introspect.Interface{}, err
	}
	if len(n.Interfaces) == 0 {
		return introspect.Interface{}, fmt.Errorf("no interface in introspection document")
	}
	return n.Interfaces[0], nil
}

// Introspectable builds the Introspectable implementation from the checked-in
// document plus the standard interfaces the object also answers.
func Introspectable(doc string, withProps bool) (introspect.Introspectable, error) {
	iface, err := ParseInterface(doc)
	if err != nil {
		return "", err
	}
	n := &introspect.Node{Interfaces: []introspect.Interface{introspect.IntrospectData, iface}}
	if withProps {
		n.Interfaces = append(n.Interfaces, prop.IntrospectData)
	}
	return introspect.NewIntrospectable(n), nil
}

// RequestName claims name after everything is exported (an early caller must
// never hit UnknownMethod), failing if another process owns it.
func RequestName(conn *dbus.Conn, name string) error {
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request name %s: %w", name, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("name %s is already owned (reply %d)", name, reply)
	}
	return nil
}

// SenderUID returns the unix uid of sender as the bus daemon knows it (from
// the socket's credentials, which the caller cannot forge).
func SenderUID(ctx context.Context, conn *dbus.Conn, sender dbus.Sender) (uint32, error) {
	if sender == "" {
		return 0, errors.New("no sender (peer-to-peer call?)")
	}
	var uid uint32
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0,
		string(sender)).Store(&uid)
	if err != nil {
		return 0, fmt.Errorf("uid of %s: %w", sender, err)
	}
	return uid, nil
}

// ReplyName is the D-Bus error name in err, or "" if err is not an error
// reply. godbus returns replies as dbus.Error values; *dbus.Error is
// accepted too.
func ReplyName(err error) string {
	if e, ok := ReplyError(err); ok {
		return e.Name
	}
	return ""
}

// ReplyError finds the D-Bus error reply in err's chain, whichever of the
// two forms godbus used.
func ReplyError(err error) (dbus.Error, bool) {
	var v dbus.Error
	if errors.As(err, &v) {
		return v, true
	}
	var p *dbus.Error
	if errors.As(err, &p) && p != nil {
		return *p, true
	}
	return dbus.Error{}, false
}
