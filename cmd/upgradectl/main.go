// Command upgradectl drives the upgrade daemon over D-Bus: status, check,
// upgrade (with a live progress bar on a terminal, plain lines otherwise,
// --json for scripts), apply, cancel, rollback, history, channel.
//
// Exit codes: 0 success, 1 failure, 2 usage, 3 up to date, 4 not authorized,
// 5 busy.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/dbusapi"
)

// Exit codes.
const (
	exitOK = iota
	exitFailed
	exitUsage
	exitUpToDate
	exitNotAuthorized
	exitBusy
)

const exitCodes = `Exit codes: 0 ok, 1 failed, 2 usage, 3 up to date (nothing to install),
4 not authorized, 5 busy, 130 interrupted (the job keeps running).`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := clidoc.Execute(ctx, newRoot(&cli{out: os.Stdout}), os.Args[1:], os.Stderr, codeFor)
	stop()
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
	if dbusapi.ReplyName(err) == "org.freedesktop.DBus.Error.AccessDenied" {
		return exitNotAuthorized
	}
	return exitFailed
}

type cli struct {
	conn  *dbus.Conn
	obj   dbus.BusObject
	json  bool
	out   *os.File
	agent *agent // the polkit text agent, when one was started
}

// newRoot is the command tree; every command connects to the bus only when
// it runs, so help and usage errors never need one.
func newRoot(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "upgradectl",
		Short: "control the dual-slot upgrade daemon",
		Long: `upgradectl drives the upgrade daemon (upgraded, D-Bus org.laptop.Upgrade1): it shows
the state, looks for a newer version, builds it into the inactive slot and follows
the job, activates a staged version, cancels, rolls back, and switches channels.

A user who is not root is asked for a password by polkit on a terminal when an
action needs one (as systemctl does). DBUS_SYSTEM_BUS_ADDRESS selects another bus.
See also upgraded(8), upgraded.conf(5) and upgrade-publish(1).

` + exitCodes,
		Args: clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return clidoc.Usage("no command given")
		},
		PersistentPostRun: func(*cobra.Command, []string) { c.close() },
	}
	root.PersistentFlags().BoolVar(&c.json, "json", false, "machine-readable output (JSON lines)")
	root.AddCommand(
		simple(c, "status", "show the daemon's state, versions and the release notes of a pending version", c.status),
		simple(c, "check", "look for a newer version: its name, notes, download size and disk needs", c.check),
		upgradeCommand(c),
		applyCommand(c),
		simple(c, "watch", "follow the running job until it finishes", c.watchRunning),
		simple(c, "cancel", "cancel the running job", func(ctx context.Context) error { return c.call(ctx, "Cancel") }),
		rollbackCommand(c),
		simple(c, "history", "list finished jobs, newest first", c.history),
		channelCommand(c),
	)
	clidoc.Prepare(root, clidoc.Docs{Section: "1"})
	return root
}

// simple is a command without arguments or flags of its own.
func simple(c *cli, use, short string, run func(context.Context) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.connect(); err != nil {
				return err
			}
			return run(cmd.Context())
		},
	}
}

func (c *cli) connect() error {
	if c.conn != nil {
		return nil
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		return fmt.Errorf("system bus: %w", err)
	}
	c.conn, c.obj = conn, conn.Object(dbusapi.UpgradeName, dbusapi.UpgradePath)
	return nil
}

func (c *cli) close() {
	c.agent.stop()
	if c.conn != nil {
		c.conn.Close()
	}
}

// call calls a method that may need authorization: a text polkit agent is
// started first when a person is at the terminal.
func (c *cli) call(ctx context.Context, method string, args ...any) error {
	return c.act(ctx, method, args...).Err
}

// act is an action call: interactive authorization allowed.
func (c *cli) act(ctx context.Context, method string, args ...any) *dbus.Call {
	c.startAgent()
	return c.obj.CallWithContext(ctx, dbusapi.UpgradeInterface+"."+method, dbus.FlagAllowInteractiveAuthorization, args...)
}

func (c *cli) getAll(ctx context.Context) (map[string]dbus.Variant, error) {
	var m map[string]dbus.Variant
	err := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, dbusapi.UpgradeInterface).Store(&m)
	return m, err
}
