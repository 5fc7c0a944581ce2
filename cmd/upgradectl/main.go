// Command upgradectl drives the upgrade daemon over D-Bus: status, check,
// upgrade (with a live progress bar on a terminal, plain lines otherwise,
// --json for scripts), cancel, rollback, history.
//
// Exit codes: 0 success, 1 failure, 2 usage, 3 up to date, 4 not authorized,
// 5 busy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
)

const usage = `usage: upgradectl [--json] COMMAND [ARGS]

commands:
  status                     show the daemon's state
  check                      look for a newer version and what it costs
  upgrade [VERSION]          upgrade (newest if no VERSION) and follow progress
          [--tries N] [--force] [--background] [--no-wait] [--cancel-on-interrupt]
  watch                      follow the running job until it finishes
  cancel                     cancel the running job
  rollback                   boot the other slot next, if it verifies
  history                    list finished jobs

exit codes: 0 ok, 1 failed, 2 usage, 3 up to date, 4 not authorized, 5 busy
`

// Exit codes.
const (
	exitOK = iota
	exitFailed
	exitUsage
	exitUpToDate
	exitNotAuthorized
	exitBusy
)

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := exitOK
	if err := run(ctx, os.Args[1:]); err != nil {
		code = exitFailed
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = codeFor(err)
		}
		if code != exitUpToDate || !errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, "upgradectl:", err)
		}
	}
	os.Exit(code)
}

// codeFor maps a D-Bus error to an exit code.
func codeFor(err error) int {
	switch dbusapi.ErrorName(err) {
	case dbusapi.ErrUpToDate:
		return exitUpToDate
	case dbusapi.ErrNotAuthorized:
		return exitNotAuthorized
	case dbusapi.ErrBusy:
		return exitBusy
	case dbusapi.ErrInvalidArgs:
		return exitUsage
	}
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.AccessDenied" {
		return exitNotAuthorized
	}
	return exitFailed
}

type cli struct {
	conn *dbus.Conn
	obj  dbus.BusObject
	json bool
	out  *os.File
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upgradectl", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	jsonOut := fs.Bool("json", false, "machine-readable output (JSON lines)")
	if err := fs.Parse(args); err != nil {
		return &exitError{exitUsage, err}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{exitUsage, errors.New("no command")}
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		return fmt.Errorf("system bus: %w", err)
	}
	defer conn.Close()
	c := &cli{conn: conn, obj: conn.Object(dbusapi.UpgradeName, dbusapi.UpgradePath), json: *jsonOut, out: os.Stdout}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "status":
		return c.status(ctx)
	case "check":
		return c.check(ctx)
	case "upgrade":
		return c.upgrade(ctx, rest)
	case "watch":
		return c.watchRunning(ctx)
	case "cancel":
		return c.call(ctx, "Cancel")
	case "rollback":
		return c.rollback(ctx)
	case "history":
		return c.history(ctx)
	}
	fs.Usage()
	return &exitError{exitUsage, fmt.Errorf("unknown command %q", cmd)}
}

func (c *cli) call(ctx context.Context, method string, args ...any) error {
	return c.obj.CallWithContext(ctx, dbusapi.UpgradeInterface+"."+method, 0, args...).Err
}

func (c *cli) getAll(ctx context.Context) (map[string]dbus.Variant, error) {
	var m map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, dbusapi.UpgradeInterface).Store(&m)
	return m, err
}
