package testbus

import (
	"os"
	"path/filepath"
	"testing"
)

// activatedPinger owns org.laptop.Upgrade1 and answers Ping, in Python so
// the test needs no second Go binary.
const activatedPinger = `import dbus, dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
class P(dbus.service.Object):
    @dbus.service.method("org.laptop.Upgrade1", out_signature="s")
    def Ping(self):
        return "pong"
p = P(bus, "/org/laptop/Upgrade1")
name = dbus.service.BusName("org.laptop.Upgrade1", bus)
GLib.MainLoop().run()
`

// TestActivation checks the ServiceDir promise: a .service file dropped
// there after Start is activated on the first call, with the bus address
// in the service's environment.
func TestActivation(t *testing.T) {
	requireRoot(t)
	b := Start(t)
	script := filepath.Join(b.Dir, "pinger.py")
	if err := os.WriteFile(script, []byte(activatedPinger), 0o644); err != nil {
		t.Fatal(err)
	}
	service := "[D-BUS Service]\nName=org.laptop.Upgrade1\nExec=/usr/bin/python3 " + script + "\nUser=root\n"
	if err := os.WriteFile(filepath.Join(b.ServiceDir, "org.laptop.Upgrade1.service"), []byte(service), 0o644); err != nil {
		t.Fatal(err)
	}
	var got string
	err := b.Conn(t).Object("org.laptop.Upgrade1", "/org/laptop/Upgrade1").
		Call("org.laptop.Upgrade1.Ping", 0).Store(&got)
	if err != nil || got != "pong" {
		t.Fatalf("Ping through activation = %q, %v; want pong", got, err)
	}
}
