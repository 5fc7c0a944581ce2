// Command upgraded is the upgrade daemon: it owns org.laptop.Upgrade1 on the
// system bus, runs one upgrade at a time into the inactive slot, and hands
// the result to the security service. With --once it runs one upgrade in the
// foreground without D-Bus (image builders, recovery, benchmarks).
package main

import (
	"context"
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
	"github.com/spf13/cobra"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/confine"
	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/internal/lowprio"
	"laptop.org/upgrade/internal/textpages"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/security"
)

// The main goroutine keeps the main thread, so that no worker of
// lowprio.Background lands there: ps and top show the daemon at its own
// priority, and the thread is never niced.
func init() { runtime.LockOSThread() }

// maxProcs is GOMAXPROCS while a job runs (busy) and while idle. Busy: a P
// for every goroutine a job keeps busy, plus spare ones: a worker per
// core, a second pool of that size placing a pack's items while its
// stream is decoded, and fetch hashing on up to 4 connections (the engine
// sizes its pools by cores, not by GOMAXPROCS). If busy workers hold every
// P, a D-Bus call waits in the run queue until the runtime preempts one
// (10 ms slices): GetAll p99 during an upgrade was 20-60 ms with
// GOMAXPROCS = cores. With spare Ps the kernel decides who runs, and the
// workers' threads are the niced ones (internal/lowprio). bench/dbusbench,
// interleaved runs on 2 cores: GetAll p99 5.3-6.9 ms with 8 Ps, 6.2-9.5 ms
// with cores + 1. Idle: cores + 1, since every P that runs starts threads
// of its own (~0.3 MiB more idle RSS with 8).
func maxProcs(busy bool) int {
	if busy {
		return 2*runtime.NumCPU() + 4
	}
	return runtime.NumCPU() + 1
}

// setMaxProcs applies maxProcs; an explicit GOMAXPROCS in the environment
// wins (experiments). Setting the current value again costs nothing.
func setMaxProcs(busy bool) {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(maxProcs(busy))
	}
}

type flags struct {
	root, config, keys, channel string
	mirrors                     []string
	once, activate              bool
	version                     uint64
	tries                       int
	networkWait                 time.Duration
	confine                     string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log.SetFlags(0)
	log.SetPrefix("upgraded: ")
	setupLogging()
	code := clidoc.Execute(ctx, newRoot(), os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

// newRoot is the daemon's command line (its man page, upgraded(8), and
// upgraded.conf(5) come from the same definitions).
func newRoot() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "upgraded",
		Short: "the dual-slot upgrade daemon (D-Bus org.laptop.Upgrade1)",
		Long: `upgraded owns org.laptop.Upgrade1 on the system bus and runs one upgrade at a time
into the inactive slot: it checks the signed index of its channel on the mirrors,
clones the running slot, downloads only what changed, builds and verifies the new tree
and hands it to the security service (securityd), which alone makes it the next boot.

Its settings are in ROOT/etc/upgrade/upgraded.conf (see upgraded.conf(5)); the flags
below override them. SIGHUP (systemctl reload upgraded) re-reads the file: a changed
mirror list or channel applies to the next check or job.

With --once it runs one upgrade in the foreground without D-Bus (image builders,
recovery, benchmarks) and exits.`,
		Args: clidoc.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.root, "root", "/", "root prefix holding the slots")
	fl.StringVar(&f.config, "config", "", "config file (default ROOT/etc/upgrade/upgraded.conf)")
	fl.StringVar(&f.keys, "keys", "", "directory of trusted *.pub keys (overrides the config)")
	fl.StringVar(&f.channel, "channel", "", "channel (overrides the config)")
	fl.StringArrayVar(&f.mirrors, "mirror", nil, "mirror URL, repeatable (overrides the config)")
	fl.BoolVar(&f.once, "once", false, "run one upgrade in the foreground without D-Bus, then exit")
	fl.BoolVar(&f.activate, "activate", false, "with --once: verify and make the new slot the next boot (in-process security service; root)")
	fl.Uint64Var(&f.version, "target-version", 0, "with --once: version to install (0 = newest)")
	fl.IntVar(&f.tries, "tries", 0, "boot tries for a new slot (0 = config)")
	fl.DurationVar(&f.networkWait, "network-wait", 2*time.Minute, "how long to wait for a route to a mirror (before a job, and after a lost link)")
	fl.StringVar(&f.confine, "confine", string(confine.Auto), "Landlock self-confinement: required, auto (when the kernel has it) or off")
	clidoc.Prepare(cmd, clidoc.Docs{Section: "8", Extra: func() map[string]string {
		return map[string]string{"upgraded.conf.5": daemon.ConfigManual()}
	}})
	return cmd
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
	trusted, kr, err := repo.LoadTrust(lr.TrustedRootFile(), keys)
	if err != nil {
		return nil, fc, err
	}
	cfg := &engine.Config{
		Root: lr, Mirrors: fc.Mirrors, Channel: fc.Channel, Hardware: fc.Hardware, Keys: kr, TrustedRoot: trusted,
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
	// Serials were kept for one channel before they were kept per
	// channel: they are the configured channel's.
	if err := engine.MigrateSeen(cfg.Root, cfg.Channel); err != nil {
		return err
	}
	if err := confineSelf(cfg.Root, f); err != nil {
		return err
	}
	svc := newService(f.networkWait)
	defer svc.Close()
	if f.once {
		cfg.Mirrors = daemon.ExpandMirrors(cfg.Mirrors, cfg.Channel)
		return once(ctx, cfg, fc, f, svc)
	}
	lowprio.Enable()   // a daemon's job is background work; --once is waited for
	setMaxProcs(false) // raised while a job runs: service.notify
	// A job's soft memory limit (engine/memory.go) keeps the heap near its
	// live set, so the collector ran ~35 times a second while files were
	// applied; every cycle stops the world twice, and stopping a worker
	// that the kernel has descheduled (nice 10, a busy machine) took up to
	// 40 ms, all of which a D-Bus call waits. 8 MiB more room cuts the
	// cycles tenfold (bench/dbusbench: ~350 -> ~35 per job; GetAll p99
	// 20-50 ms -> 7-10 ms) for ~8 MiB more peak RSS (60 -> ~68 MiB). Only
	// the daemon: --once keeps the engine's default and its peak.
	engine.JobMemoryLimit += 8 << 20
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
	// A job cut off by a crash or a power cut resumes before the name is
	// claimed: the first state a client can read shows it, never an idle
	// daemon that a moment later is running job N again.
	resumed, ok := d.Resume()
	if err := srv.Export(d); err != nil {
		return err
	}
	svc.ready(ctx, d) // the name is owned: READY=1
	log.Printf("ready on %s (root %s, %d mirrors, channel %s)", dbusapi.UpgradeName, cfg.Root.Dir, len(cfg.Mirrors), cfg.Channel)
	if ok {
		log.Printf("job %d resumed", resumed)
	} else if _, err := textpages.Release(); err != nil {
		// Start-up mapped nearly the whole binary; idle needs little of it
		// (a resumed job releases when it ends).
		log.Printf("code pages stay resident: %v", err)
	}
	go reloadOnHUP(ctx, f, cfg, d)
	<-ctx.Done()
	svc.stopping()
	log.Print("stopping; a running job will resume at the next start")
	return nil
}

// once runs one upgrade in the foreground: the same engine the daemon drives.
func once(ctx context.Context, cfg *engine.Config, fc daemon.FileConfig, f flags, svc *service) error {
	var sec *security.Service
	if f.activate {
		sec = &security.Service{Root: cfg.Root, TrustedRoot: cfg.TrustedRoot, Keys: cfg.Keys, Policy: cfg.Policy, Tries: fc.Tries, Logf: log.Printf}
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

// reloadOnHUP re-reads the config at every SIGHUP (systemctl reload) and
// hands it to the daemon for the next check or job. A file that does not
// parse changes nothing. Trusted keys stay those read at start: the
// security service, which alone decides what boots, reads its own.
func reloadOnHUP(ctx context.Context, f flags, started *engine.Config, d *daemon.Daemon) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, fc, err := engineConfig(f)
		if err != nil {
			log.Printf("reload: %v; keeping the settings in force", err)
			continue
		}
		cfg.Keys, cfg.TrustedRoot = started.Keys, started.TrustedRoot
		d.Reload(*cfg, fc.Tries)
	}
}

// confineSelf restricts the whole process, before any job can run, to
// writing what an upgrade needs (package confine); with --once --activate
// also the security service's directory, since its code runs in-process.
func confineSelf(r layout.Root, f flags) error {
	mode, err := confine.ParseMode(f.confine)
	if err != nil {
		return err
	}
	if err := confine.CheckMounts(r); err != nil {
		log.Print(err) // each job fails on it, naming the file
	}
	if mode == confine.Off {
		log.Print("NOT confined: --confine=off")
		return nil
	}
	var extra []string
	if f.once && f.activate {
		if err := os.MkdirAll(r.SecurityDir(), 0700); err != nil {
			return err
		}
		extra = append(extra, r.SecurityDir())
	}
	rules, err := confine.ForDaemon(r, extra...)
	if err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	res, err := confine.Apply(rules, mode)
	if err != nil {
		return err
	}
	if rules.NoSlot != nil {
		log.Printf("no slot is writable: %v", rules.NoSlot)
	}
	if !f.once || !res.Enforced {
		// A daemon says what it may write; --once stays quiet when confined.
		log.Printf("%s (writes: %s; names only: %s)", res, strings.Join(rules.Write, " "), strings.Join(rules.Names, " "))
	}
	return nil
}
