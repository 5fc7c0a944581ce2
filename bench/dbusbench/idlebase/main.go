// Command idlebase is the floor for the daemon's idle memory: a Go program
// that does only what any D-Bus service must (connect to the system bus,
// export one object with properties, own a name) and then waits.
// bench/dbusbench measures its idle RSS next to upgraded's.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"
)

type obj struct{}

func (obj) Ping() (string, *dbus.Error) { return "pong", nil }

func main() {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	const name, path = "org.laptop.IdleBase", dbus.ObjectPath("/org/laptop/IdleBase")
	if err := conn.Export(obj{}, path, name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := prop.Export(conn, path, prop.Map{name: {"State": {Value: "idle"}}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The bench bus's policy lets no one else own a name; the unique name
	// serves as well for measuring.
	if _, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil {
		fmt.Fprintln(os.Stderr, "name (ignored):", err)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
