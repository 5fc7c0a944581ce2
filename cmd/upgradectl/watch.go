package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/dbusapi"
)

func (c *cli) upgrade(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	tries := fs.Uint("tries", 0, "boot tries for the new version")
	force := fs.Bool("force", false, "ignore the background policy")
	noWait := fs.Bool("no-wait", false, "start the job and return")
	background := fs.Bool("background", false, "a background job (as the timer starts): metered/battery policy, idle priority, rate cap")
	cancelOnInt := fs.Bool("cancel-on-interrupt", false, "Ctrl-C cancels the job instead of leaving it running")
	if err := fs.Parse(args); err != nil {
		return &exitError{exitUsage, err}
	}
	version := ""
	if fs.NArg() > 1 {
		return &exitError{exitUsage, errors.New("upgrade takes at most one VERSION")}
	}
	if fs.NArg() == 1 {
		version = fs.Arg(0)
	}
	opts := map[string]dbus.Variant{}
	if *tries > 0 {
		opts["tries"] = dbus.MakeVariant(uint32(*tries))
	}
	if *background {
		opts["background"] = dbus.MakeVariant(true)
	}
	if *force {
		opts["force"] = dbus.MakeVariant(true)
	}
	// Subscribe before starting, then take a snapshot: no update is lost.
	sig, err := c.subscribe()
	if err != nil {
		return err
	}
	snap, err := c.getAll(ctx)
	if err != nil {
		return err
	}
	var job uint32
	if err := c.obj.CallWithContext(ctx, dbusapi.UpgradeInterface+".Upgrade", 0, version, opts).Store(&job); err != nil {
		return err
	}
	if *noWait {
		if c.json {
			c.emit(map[string]any{"event": "started", "job": job})
		} else {
			fmt.Fprintf(c.out, "job %d started\n", job)
		}
		return nil
	}
	return c.follow(ctx, sig, snap, job, *cancelOnInt)
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
	return c.follow(ctx, sig, snap, job, false)
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

func (c *cli) follow(ctx context.Context, sig chan *dbus.Signal, snap map[string]dbus.Variant, job uint32, cancelOnInt bool) error {
	r := newRenderer(c, job)
	r.update(snap)
	interrupted := ctx.Done()
	for {
		select {
		case <-interrupted:
			interrupted = nil
			if !cancelOnInt {
				r.finishLine()
				fmt.Fprintf(os.Stderr, "upgradectl: job %d keeps running in the background; `upgradectl watch` follows it, `upgradectl cancel` stops it\n", job)
				return &exitError{130, errors.New("interrupted")}
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
					return &exitError{codeFor(dbus.Error{Name: name, Body: []any{msg}}), fmt.Errorf("%s: %s", strings.TrimPrefix(name, dbusapi.ErrorPrefix), msg)}
				}
				return nil
			}
		}
	}
}

// renderer draws progress: a bar on a terminal, a line per change of phase
// (and every 10 %) otherwise, JSON lines with --json.
type renderer struct {
	c         *cli
	job       uint32
	tty       bool
	lastState string
	lastPct   uint32
	lastBytes uint64
	lastT     time.Time
	rate      float64
	drawn     bool
}

func newRenderer(c *cli, job uint32) *renderer {
	_, err := unix.IoctlGetTermios(int(c.out.Fd()), unix.TCGETS)
	return &renderer{c: c, job: job, tty: err == nil && !c.json, lastT: time.Now()}
}

func (r *renderer) update(m map[string]dbus.Variant) {
	state := str(m, "State")
	pct, _ := m["Progress"].Value().(uint32)
	done, _ := m["BytesDone"].Value().(uint64)
	total, _ := m["BytesTotal"].Value().(uint64)
	now := time.Now()
	if dt := now.Sub(r.lastT).Seconds(); dt > 0.2 && done >= r.lastBytes {
		inst := float64(done-r.lastBytes) / dt
		r.rate = 0.7*r.rate + 0.3*inst
		r.lastBytes, r.lastT = done, now
	}
	switch {
	case r.c.json:
		if state != r.lastState || pct != r.lastPct {
			r.c.emit(map[string]any{"event": "progress", "job": r.job, "state": state, "progress": pct, "bytes_done": done, "bytes_total": total})
		}
	case r.tty:
		width := 30
		fill := int(pct) * width / 100
		bar := strings.Repeat("#", fill) + strings.Repeat(".", width-fill)
		line := fmt.Sprintf("\r[%s] %3d%% %-15s", bar, pct, state)
		if total > 0 && state == "downloading" {
			line += fmt.Sprintf(" %s/%s %s/s", human(done), human(total), human(uint64(r.rate)))
			if r.rate > 0 && total > done {
				line += " ETA " + (time.Duration(float64(total-done)/r.rate) * time.Second / time.Second * time.Second).String()
			}
		}
		fmt.Fprintf(r.c.out, "%-100s", line)
		r.drawn = true
	default:
		if state == "idle" && r.lastState == "" {
			break // the snapshot taken before the job started
		}
		if state != r.lastState || pct/10 != r.lastPct/10 {
			fmt.Fprintf(r.c.out, "job %d: %s %d%%", r.job, state, pct)
			if total > 0 && state == "downloading" {
				fmt.Fprintf(r.c.out, " (%s of %s)", human(done), human(total))
			}
			fmt.Fprintln(r.c.out)
		}
	}
	r.lastState, r.lastPct = state, pct
}

func (r *renderer) finishLine() {
	if r.drawn {
		fmt.Fprintln(r.c.out)
		r.drawn = false
	}
}

func (r *renderer) finished(ok bool, name, msg string, m map[string]dbus.Variant) {
	r.finishLine()
	if r.c.json {
		r.c.emit(map[string]any{"event": "finished", "job": r.job, "success": ok, "error_name": name, "message": msg, "next_boot_slot": str(m, "NextBootSlot"), "next_boot_version": str(m, "NextBootVersion")})
		return
	}
	if ok {
		fmt.Fprintf(r.c.out, "job %d finished: version %s is ready in slot %s; restart to use it\n", r.job, or(str(m, "NextBootVersion"), str(m, "TargetVersion")), str(m, "NextBootSlot"))
		return
	}
	fmt.Fprintf(r.c.out, "job %d failed: %s\n", r.job, msg)
}
