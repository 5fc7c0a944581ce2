package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
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

	mu    sync.Mutex
	d     *daemon.Daemon
	phase string
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
		Background:  &daemon.Background{Check: pol.Check, Lower: bgpolicy.Lower, MaxRate: fc.BackgroundBPS},
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
func (s *service) notify(next func(map[string]any)) func(map[string]any) {
	return func(changed map[string]any) {
		next(changed)
		s.mu.Lock()
		d := s.d
		s.mu.Unlock()
		if d == nil {
			return
		}
		st := d.Status()
		s.n.Status(st.StatusLine())
		s.mu.Lock()
		moved := string(st.State) != s.phase
		s.phase = string(st.State)
		s.mu.Unlock()
		if moved {
			setMaxProcs(busyState(st.State))
			slog.Info(fmt.Sprintf("job %d: %s", st.Job, st.State), "job", st.Job, "phase", string(st.State),
				"version", st.TargetVersion, "bytes_done", st.BytesDone, "bytes_total", st.BytesTotal)
		}
	}
}

// busyState tells whether the daemon works in state st (a job, a check, a
// rollback) rather than waiting.
func busyState(st daemon.State) bool {
	return st != daemon.StateIdle && st != daemon.StateReadyToReboot
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
	s.mu.Lock()
	s.d = d
	s.mu.Unlock()
	o := s.n.Ready(d.Status().StatusLine())
	log.Printf("service manager: READY %s; watchdog %v", o, s.wd.Interval())
	go s.wd.RunIdle(ctx, d.Busy)
}

func (s *service) stopping() { s.n.Stopping("stopping; a running job resumes at the next start") }

// proxyFunc is the config's `proxy =`: every http(s) mirror goes through
// it except hosts in no_proxy/NO_PROXY (names, .domains, IPs, CIDRs, "*"),
// loopback and link-local addresses (a proxy cannot reach our link's zone).
func proxyFunc(proxy string) (func(*http.Request) (*url.URL, error), error) {
	u, err := url.Parse(proxy)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("proxy %q: want http://host:port", proxy)
	}
	np := os.Getenv("no_proxy")
	if np == "" {
		np = os.Getenv("NO_PROXY")
	}
	return func(r *http.Request) (*url.URL, error) {
		if bypass(r.URL.Hostname(), np) {
			return nil, nil
		}
		return u, nil
	}, nil
}

func bypass(host, noProxy string) bool {
	if a, err := netip.ParseAddr(host); err == nil && (a.IsLoopback() || a.IsLinkLocalUnicast()) || host == "localhost" {
		return true
	}
	for _, e := range strings.Split(noProxy, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case e == "*":
			return true
		case strings.Contains(e, "/"):
			if p, err := netip.ParsePrefix(e); err == nil {
				if a, err := netip.ParseAddr(host); err == nil && p.Contains(a.WithZone("")) {
					return true
				}
			}
		default:
			if h, _, err := net.SplitHostPort(e); err == nil {
				e = h
			}
			e = strings.Trim(e, "[]")
			d := strings.TrimPrefix(e, ".")
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		}
	}
	return false
}

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
