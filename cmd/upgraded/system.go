package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/bgpolicy"
	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/netmon"
	"laptop.org/upgrade/systemd"
)

// setupLogging sends log lines to the journal with structured fields when
// systemd connected stderr to it, and leaves plain text otherwise.
func setupLogging() {
	if systemd.UnderJournal() {
		slog.SetDefault(slog.New(systemd.NewLogHandler(os.Stderr, slog.LevelInfo)))
		log.SetPrefix("")
	}
}

// service is the daemon's life as a system service: notify, watchdog,
// network monitor.
type service struct {
	n   *systemd.Notifier
	wd  *systemd.Watchdog
	mon *netmon.Monitor // nil if netlink is unavailable

	networkWait time.Duration
}

func newService(networkWait time.Duration) *service {
	n := systemd.NewNotifier(log.Printf)
	s := &service{n: n, wd: systemd.NewWatchdog(n), networkWait: networkWait}
	mon, err := netmon.New(netmon.Options{Logf: log.Printf})
	if err != nil {
		log.Printf("network monitor unavailable (%v); not waiting for routes", err)
	} else {
		s.mon = mon
	}
	return s
}

func (s *service) Close() {
	if s.mon != nil {
		s.mon.Close()
	}
}

// system is the daemon's System: network, inhibitor, background policy,
// watchdog pings from job progress.
func (s *service) system(conn *dbus.Conn, fc daemon.FileConfig) daemon.System {
	pol := bgpolicy.Policy{Conn: conn, AllowMetered: fc.AllowMetered, MinBattery: fc.MinBattery, MaxRate: fc.BackgroundBPS, Logf: log.Printf}
	sys := daemon.System{
		Inhibitor:   &quietInhibitor{Inhibitor: &systemd.Inhibitor{Conn: conn}},
		Background:  &daemon.Background{Check: pol.Check, MaxRate: fc.BackgroundBPS},
		Alive:       s.wd.Ping,
		NetworkWait: s.networkWait,
	}
	if s.mon != nil {
		sys.Network = s.mon
	}
	return sys
}

// notify wraps the D-Bus property notifier: STATUS= lines and one
// structured log line per phase change.
func (s *service) notify(next func(old, cur daemon.Status)) func(old, cur daemon.Status) {
	return func(old, cur daemon.Status) {
		next(old, cur)
		s.n.Status(cur.StatusLine())
		if cur.State != old.State {
			slog.Info(fmt.Sprintf("job %d: %s", cur.Job, cur.State), "job", cur.Job, "phase", string(cur.State),
				"version", cur.TargetVersion, "bytes_done", cur.BytesDone, "bytes_total", cur.BytesTotal)
		}
	}
}

// finished logs the end of a job with its fields, then passes it on.
func (s *service) finished(next func(uint32, bool, string, string)) func(uint32, bool, string, string) {
	return func(job uint32, ok bool, name, msg string) {
		lvl := slog.LevelInfo
		if !ok {
			lvl = slog.LevelError
		}
		slog.Log(context.Background(), lvl, fmt.Sprintf("job %d finished: success %v %s", job, ok, msg), "job", job, "success", ok, "error_name", name)
		next(job, ok, name, msg)
	}
}

// ready is called once the bus name is owned: READY=1, then the idle
// watchdog ticker (silent while a job runs: its progress pings).
func (s *service) ready(ctx context.Context, d *daemon.Daemon) {
	o := s.n.Ready(d.Status().StatusLine())
	log.Printf("service manager: READY %s; watchdog %v", o, s.wd.Interval())
	go s.wd.RunIdle(ctx, d.Busy)
}

func (s *service) stopping() { s.n.Stopping("stopping; a running job resumes at the next start") }

// quietInhibitor reports only the first failure to take the lock: without
// logind (a container, a build machine) every job would log it again.
type quietInhibitor struct {
	*systemd.Inhibitor
	warned atomic.Bool
}

func (q *quietInhibitor) Acquire(ctx context.Context) error {
	err := q.Inhibitor.Acquire(ctx)
	if err != nil && q.warned.Swap(true) {
		return nil
	}
	return err
}
