// Command upgraded is the upgrade daemon: it owns org.laptop.Upgrade1 on the
// system bus, runs one upgrade at a time into the inactive slot, and hands
// the result to the security service. With --once it runs one upgrade in the
// foreground without D-Bus (image builders, recovery, benchmarks).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/security"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

type flags struct {
	root, config, keys, channel string
	mirrors                     list
	once, activate              bool
	version                     uint64
	tries                       int
	networkWait                 time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.SetFlags(0)
	log.SetPrefix("upgraded: ")
	setupLogging()
	var f flags
	flag.StringVar(&f.root, "root", "/", "root prefix holding the slots")
	flag.StringVar(&f.config, "config", "", "config file (default ROOT/etc/upgrade/upgraded.conf)")
	flag.StringVar(&f.keys, "keys", "", "directory of trusted *.pub keys (overrides the config)")
	flag.StringVar(&f.channel, "channel", "", "channel (overrides the config)")
	flag.Var(&f.mirrors, "mirror", "mirror URL, repeatable (overrides the config)")
	flag.BoolVar(&f.once, "once", false, "run one upgrade in the foreground without D-Bus, then exit")
	flag.BoolVar(&f.activate, "activate", false, "with --once: verify and make the new slot the next boot (in-process security service; root)")
	flag.Uint64Var(&f.version, "version", 0, "with --once: version to install (0 = newest)")
	flag.IntVar(&f.tries, "tries", 0, "boot tries for a new slot (0 = config)")
	flag.DurationVar(&f.networkWait, "network-wait", 2*time.Minute, "how long to wait for a route to a mirror (before a job, and after a lost link)")
	flag.Parse()
	if err := run(ctx, f); err != nil {
		log.Fatal(err)
	}
}

// engineConfig merges the config file and the flags.
func engineConfig(f flags) (*engine.Config, daemon.FileConfig, error) {
	lr, err := layout.New(f.root)
	if err != nil {
		return nil, daemon.FileConfig{}, err
	}
	path := f.config
	if path == "" {
		path = lr.DaemonConfig()
	}
	fc, err := daemon.LoadFileConfig(path)
	if err != nil {
		return nil, fc, fmt.Errorf("config %s: %w", path, err)
	}
	if len(f.mirrors) > 0 {
		fc.Mirrors = f.mirrors
	}
	if f.channel != "" {
		fc.Channel = f.channel
	}
	if f.tries > 0 {
		fc.Tries = f.tries
	}
	keys := f.keys
	if keys == "" {
		keys = filepath.Join(lr.Dir, fc.Keys)
	}
	kr, err := repo.LoadKeyring(keys)
	if err != nil {
		return nil, fc, err
	}
	cfg := &engine.Config{
		Root: lr, Mirrors: fc.Mirrors, Channel: fc.Channel, Hardware: fc.Hardware, Keys: kr,
		Policy: &manifest.Policy{AllowSetuid: true, AllowDevices: fc.AllowDevices},
		Fetch:  fetch.Options{Parallel: fc.Parallel, StallTimeout: fc.StallTimeout},
		Logf:   log.Printf,
	}
	if fc.Proxy != "" {
		if cfg.Fetch.Proxy, err = proxyFunc(fc.Proxy); err != nil {
			return nil, fc, err
		}
	}
	return cfg, fc, nil
}

func run(ctx context.Context, f flags) error {
	cfg, fc, err := engineConfig(f)
	if err != nil {
		return err
	}
	svc := newService(f.networkWait)
	defer svc.Close()
	if f.once {
		return once(ctx, cfg, fc, f, svc)
	}
	// One P more than cores: a job keeps a worker per core busy (the
	// engine sizes its workers by cores), and the spare P lets D-Bus calls
	// run at once instead of waiting for a scheduler quantum (GetAll p99
	// during an upgrade 20-60 ms -> ~11 ms in bench/dbusbench).
	runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("system bus: %w", err)
	}
	defer conn.Close()
	srv := dbusapi.NewUpgradeServer(conn)
	d, err := daemon.New(daemon.Config{
		Engine:    *cfg,
		Security:  dbusapi.NewSecurityClient(conn),
		Tries:     fc.Tries,
		ErrorName: dbusapi.ErrorName,
		Logf:      log.Printf,
		Notify:    svc.notify(srv.Notify),
		Finished:  svc.finished(srv.Finished),
		System:    svc.system(conn, fc),
	})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := srv.Export(d); err != nil {
		return err
	}
	svc.ready(ctx, d) // the name is owned: READY=1
	log.Printf("ready on %s (root %s, %d mirrors, channel %s)", dbusapi.UpgradeName, cfg.Root.Dir, len(cfg.Mirrors), cfg.Channel)
	if job, ok := d.Resume(); ok {
		log.Printf("job %d resumed", job)
	}
	<-ctx.Done()
	svc.stopping()
	log.Print("stopping; a running job will resume at the next start")
	return nil
}

// once runs one upgrade in the foreground: the same engine the daemon drives.
func once(ctx context.Context, cfg *engine.Config, fc daemon.FileConfig, f flags, svc *service) error {
	var sec *security.Service
	if f.activate {
		sec = &security.Service{Root: cfg.Root, Keys: cfg.Keys, Policy: cfg.Policy, Tries: fc.Tries, Logf: log.Printf}
		cfg.BeforeWrite = sec.Invalidate
	}
	var (
		mu   sync.Mutex // progress comes from any goroutine
		last time.Time
	)
	opts := engine.Options{Version: f.version, Progress: func(p engine.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) > time.Second || p.Phase == engine.PhaseDone {
			last = time.Now()
			log.Printf("%-11s %3.0f%% %d/%d bytes", p.Phase, p.Percent(), p.BytesDone, p.BytesTotal)
		}
	}}
	var res *engine.Result
	attempt := func(ctx context.Context) error {
		r, err := engine.Upgrade(ctx, cfg, opts)
		if r != nil && res != nil {
			r.Fetched += res.Fetched
		}
		if r != nil {
			res = r
		}
		return err
	}
	var err error
	if svc.mon != nil {
		// Wait for a route, and pause over a lost link instead of failing.
		err = svc.mon.Persist(ctx, cfg.Mirrors, f.networkWait, attempt)
	} else {
		err = attempt(ctx)
	}
	if err != nil {
		return err
	}
	fmt.Printf("slot %s holds version %d (from %d): keep %d, link %d, copy %d, delta %d, object %d; fetched %d bytes\n",
		res.Slot, res.Version, res.From, res.Counts[engine.Keep], res.Counts[engine.Link], res.Counts[engine.Copy], res.Counts[engine.Delta], res.Counts[engine.Object], res.Fetched)
	if sec != nil {
		got, err := sec.Activate(ctx, res.Slot, 0)
		if err != nil {
			return err
		}
		fmt.Printf("next boot: slot %s, version %d (on trial)\n", got.Slot, got.Version)
	}
	return nil
}
