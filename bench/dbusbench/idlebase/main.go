// Command idlebase is the floor for the daemon's idle memory: a Go program
// that does only what any D-Bus service must (connect to the system bus,
// export one object with properties, own a name) and then waits.
// bench/dbusbench measures its idle RSS next to upgraded's.
package main

import (
	"flag"
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
	// dbusbench runs it under the daemon's own name and object path, so that
	// its calls take the same way through the bus's policy.
	n := flag.String("name", "org.laptop.IdleBase", "bus name, also the properties' interface")
	p := flag.String("path", "/org/laptop/IdleBase", "object path")
	flag.Parse()
	name, path := *n, dbus.ObjectPath(*p)
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	if err := conn.Export(obj{}, path, name); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := prop.Export(conn, path, prop.Map{name: {"State": {Value: "idle"}}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if r, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		fmt.Fprintln(os.Stderr, "name:", r, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
