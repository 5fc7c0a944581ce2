package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/dbusapi"
)

// upgradeOpts are the flags of `upgrade`.
type upgradeOpts struct {
	tries                           uint
	force, background, noWait       bool
	cancelOnInt, downloadOnly, boot bool
}

func upgradeCommand(c *cli) *cobra.Command {
	var o upgradeOpts
	cmd := &cobra.Command{
		Use:   "upgrade [VERSION]",
		Short: "build a version (newest if none given) into the inactive slot and follow the job",
		Long: `upgrade builds VERSION (the newest on the channel if none is given) into the inactive
slot and has the security service make it the next boot. It follows the job with a
progress bar on a terminal, a line per phase otherwise, JSON lines with --json.

With --download-only the version is downloaded, built and verified but does not boot
next; ` + "`upgradectl apply`" + ` activates it later without downloading anything.
Ctrl-C leaves the job running (` + "`upgradectl watch`" + ` follows it again) unless
--cancel-on-interrupt.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.downloadOnly && o.boot {
				return clidoc.Usage("--download-only and --reboot exclude each other")
			}
			version := ""
			if len(args) == 1 {
				version = args[0]
			}
			if err := c.connect(); err != nil {
				return err
			}
			return c.upgrade(cmd.Context(), version, o)
		},
	}
	f := cmd.Flags()
	f.UintVar(&o.tries, "tries", 0, "boot tries the new version gets before the fallback (default: config tries)")
	f.BoolVar(&o.force, "force", false, "ignore the background policy (metered connection, battery)")
	f.BoolVar(&o.background, "background", false, "a background job, as the timer starts it: metered/battery policy, idle priority, rate cap")
	f.BoolVar(&o.noWait, "no-wait", false, "start the job and return")
	f.BoolVar(&o.cancelOnInt, "cancel-on-interrupt", false, "Ctrl-C cancels the job instead of leaving it running")
	f.BoolVar(&o.downloadOnly, "download-only", false, "stage the version (download, build, verify) without making it the next boot")
	f.BoolVar(&o.boot, "reboot", false, "restart the machine when the new version is ready")
	return cmd
}

func (c *cli) upgrade(ctx context.Context, version string, o upgradeOpts) error {
	opts := map[string]dbus.Variant{}
	if o.tries > 0 {
		opts["tries"] = dbus.MakeVariant(uint32(o.tries))
	}
	if o.background {
		opts["background"] = dbus.MakeVariant(true)
	}
	if o.force {
		opts["force"] = dbus.MakeVariant(true)
	}
	if o.downloadOnly {
		opts["download_only"] = dbus.MakeVariant(true)
	}
	return c.startJob(ctx, "Upgrade", []any{version, opts}, o)
}

// startJob subscribes, takes a snapshot, calls method and follows the
// job it starts: no update is lost.
func (c *cli) startJob(ctx context.Context, method string, args []any, o upgradeOpts) error {
	sig, err := c.subscribe()
	if err != nil {
		return err
	}
	snap, err := c.getAll(ctx)
	if err != nil {
		return err
	}
	var job uint32
	if err := c.act(ctx, method, args...).Store(&job); err != nil {
		return err
	}
	if o.noWait {
		if c.json {
			c.emit(map[string]any{"event": "started", "job": job})
		} else {
			fmt.Fprintf(c.out, "job %d started\n", job)
		}
		return nil
	}
	if err := c.follow(ctx, sig, snap, job, o.cancelOnInt, o.downloadOnly); err != nil {
		return err
	}
	if o.boot {
		return reboot(ctx)
	}
	return nil
}

// watchRunning follows whatever job is running.
func (c *cli) watchRunning(ctx context.Context) error {
	sig, err := c.subscribe()
	if err != nil {
		return err
	}
	snap, err := c.getAll(ctx)
	if err != nil {
		return err
	}
	job, _ := snap["Job"].Value().(uint32)
	if st := str(snap, "State"); st == "idle" || st == "ready-to-reboot" {
		fmt.Fprintf(c.out, "no job is running (state %s)\n", st)
		return nil
	}
	return c.follow(ctx, sig, snap, job, false, false)
}

func (c *cli) subscribe() (chan *dbus.Signal, error) {
	for _, m := range [][]dbus.MatchOption{
		{dbus.WithMatchSender(dbusapi.UpgradeName), dbus.WithMatchObjectPath(dbusapi.UpgradePath), dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged")},
		{dbus.WithMatchSender(dbusapi.UpgradeName), dbus.WithMatchObjectPath(dbusapi.UpgradePath), dbus.WithMatchInterface(dbusapi.UpgradeInterface), dbus.WithMatchMember("Finished")},
	} {
		if err := c.conn.AddMatchSignal(m...); err != nil {
			return nil, err
		}
	}
	ch := make(chan *dbus.Signal, 256)
	c.conn.Signal(ch)
	return ch, nil
}

func (c *cli) follow(ctx context.Context, sig chan *dbus.Signal, snap map[string]dbus.Variant, job uint32, cancelOnInt, staged bool) error {
	r := newRenderer(c, job)
	r.staged = staged
	r.update(snap)
	interrupted := ctx.Done()
	for {
		select {
		case <-interrupted:
			interrupted = nil
			if !cancelOnInt {
				r.finishLine()
				fmt.Fprintf(os.Stderr, "upgradectl: job %d keeps running in the background; `upgradectl watch` follows it, `upgradectl cancel` stops it\n", job)
				return &clidoc.ExitError{Code: 130, Err: errors.New("interrupted"), Quiet: true}
			}
			fmt.Fprintf(os.Stderr, "\nupgradectl: cancelling job %d…\n", job)
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := c.obj.CallWithContext(cctx, dbusapi.UpgradeInterface+".Cancel", 0).Err
			cancel()
			if err != nil {
				return err
			}
		case s, ok := <-sig:
			if !ok {
				return errors.New("lost the bus connection")
			}
			switch s.Name {
			case "org.freedesktop.DBus.Properties.PropertiesChanged":
				if len(s.Body) >= 2 {
					if ch, ok := s.Body[1].(map[string]dbus.Variant); ok {
						for k, v := range ch {
							snap[k] = v
						}
						r.update(snap)
					}
				}
			case dbusapi.UpgradeInterface + ".Finished":
				var j uint32
				var okRes bool
				var name, msg string
				if err := dbus.Store(s.Body, &j, &okRes, &name, &msg); err != nil || j != job {
					continue
				}
				r.finished(okRes, name, msg, snap)
				if !okRes {
					return &clidoc.ExitError{Code: codeFor(dbus.Error{Name: name, Body: []any{msg}}), Err: fmt.Errorf("%s: %s", strings.TrimPrefix(name, dbusapi.ErrorPrefix), msg)}
				}
				return nil
			}
		}
	}
}
