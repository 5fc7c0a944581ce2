package dbusapi

import (
	_ "embed"
	"encoding/xml"
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

// introspectable builds the Introspectable implementation from the checked-in
// document plus the standard interfaces the object also answers.
func introspectable(doc string, withProps bool) (introspect.Introspectable, error) {
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

// requestName claims name after everything is exported (an early caller must
// never hit UnknownMethod), failing if another process owns it.
func requestName(conn *dbus.Conn, name string) error {
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request name %s: %w", name, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("name %s is already owned (reply %d)", name, reply)
	}
	return nil
}

// senderUID asks the bus for the uid behind a unique name.
func senderUID(conn *dbus.Conn, sender dbus.Sender) (uint32, error) {
	var uid uint32
	err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid)
	return uid, err
}
