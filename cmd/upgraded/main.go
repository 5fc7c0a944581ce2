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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/clidoc/plain"
	"laptop.org/upgrade/confine"
	"laptop.org/upgrade/daemon"
	"laptop.org/upgrade/daemon/bus"
	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo/sigkey"
	"laptop.org/upgrade/report"
)

type flags struct {
	root, config, keys, channel string
	mirrors                     []string
	once, activate              bool
	version                     uint64
	tries                       int
	networkWait                 time.Duration
	confine                     string
	worker                      string
}

// daemonGCPercent keeps the resident daemon's heap near its live size, a few
// hundred kB: at Go's default the collector lets it reach 4 MiB between
// cycles, and the runtime's metadata grows with that peak and stays. The
// job's worker is a process of its own and keeps the default; GOGC in the
// environment still wins.
const daemonGCPercent = 25

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log.SetFlags(0)
	log.SetPrefix("upgraded: ")
	setupLogging()
	c := newCommand()
	var code int
	if docsMain != nil && len(os.Args) > 1 && os.Args[1] == "__docs" {
		code = docsMain(ctx, c)
	} else {
		code = c.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// docsMain runs the docs build's __docs command (docs.go, tag clidoc); nil in
// the installed binary.
var docsMain func(context.Context, *plain.Command) int

// newCommand is the daemon's command line (its man page, upgraded(8), and
// upgraded.conf(5) come from the same definitions in the docs build).
func newCommand() *plain.Command {
	var f flags
	c := plain.New("upgraded", "the dual-slot upgrade daemon (D-Bus org.laptop.Upgrade1)", `upgraded owns org.laptop.Upgrade1 on the system bus and runs one upgrade at a time
into the inactive slot: it checks the signed index of its channel on the mirrors,
clones the running slot, downloads only what changed, builds and verifies the new tree
and hands it to the security service (securityd), which alone makes it the next boot.

Its settings are in ROOT/etc/upgrade/upgraded.conf (see upgraded.conf(5)); the flags
below override them. SIGHUP (systemctl reload upgraded) re-reads the file: a changed
mirror list or channel applies to the next check or job.

Each upgrade and each check runs in a worker process of its own (upgrade-worker),
at background priority: the daemon itself only answers D-Bus, and links neither
the engine nor the network code.

With --once it runs one upgrade in the foreground without D-Bus (image builders,
recovery, benchmarks), in a worker too, and exits.`,
		func(ctx context.Context) error { return run(ctx, f) })
	fl := c.Flags
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
	fl.StringVar(&f.worker, "worker", "", "the job worker's executable (default: upgrade-worker beside upgraded, else ../libexec/upgrade/upgrade-worker from it)")
	fl.StringVar(&f.confine, "confine", string(confine.Auto), "Landlock self-confinement: required, auto (when the kernel has it) or off")
	return c
}

// settings merges the config file and the flags; the mirrors keep
// daemon.ChannelToken.
func settings(f flags) (worker.Settings, daemon.FileConfig, error) {
	lr, err := layout.New(f.root)
	if err != nil {
		return worker.Settings{}, daemon.FileConfig{}, err
	}
	path := f.config
	if path == "" {
		path = lr.DaemonConfig()
	}
	fc, err := daemon.LoadFileConfig(path)
	if err != nil {
		return worker.Settings{}, fc, fmt.Errorf("config %s: %w", path, err)
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
	trusted, kr, err := sigkey.LoadTrust(lr.TrustedRootFile(), keys)
	if err != nil {
		return worker.Settings{}, fc, err
	}
	s := worker.Settings{
		Root: lr.Dir, Mirrors: fc.Mirrors, Channel: fc.Channel, Hardware: fc.Hardware, Keys: kr, TrustedRoot: trusted,
		Policy: &manifest.Policy{AllowSetuid: true, AllowDevices: fc.AllowDevices},
		Fetch:  worker.FetchSettings{Parallel: fc.Parallel, StallTimeout: fc.StallTimeout},
		Proxy:  fc.Proxy,
	}
	if fc.Proxy != "" {
		if _, err := worker.CheckProxy(fc.Proxy); err != nil {
			return s, fc, err
		}
	}
	return s, fc, nil
}

func run(ctx context.Context, f flags) error {
	s, fc, err := settings(f)
	if err != nil {
		return err
	}
	lr, err := layout.New(s.Root)
	if err != nil {
		return err
	}
	// Serials were kept for one channel before they were kept per
	// channel: they are the configured channel's.
	if err := lr.MigrateSeen(s.Channel); err != nil {
		return err
	}
	// Before any worker starts: a Landlock domain is inherited across
	// fork and exec, so every worker is confined as the daemon is.
	if err := confineSelf(lr, f); err != nil {
		return err
	}
	svc := newService(f.networkWait)
	defer svc.Close()
	run, err := runner(f.worker)
	if err != nil {
		return err
	}
	if f.once {
		s.Mirrors = daemon.ExpandMirrors(s.Mirrors, s.Channel)
		return once(ctx, run, s, fc, f, svc)
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("system bus: %w", err)
	}
	defer conn.Close()
	srv := bus.NewUpgradeServer(conn)
	d, err := daemon.New(daemon.Config{
		Settings:  s,
		Worker:    run,
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
	log.Printf("ready on %s (root %s, %d mirrors, channel %s)", dbusapi.UpgradeName, s.Root, len(s.Mirrors), s.Channel)
	if ok {
		log.Printf("job %d resumed", resumed)
	}
	go reloadOnHUP(ctx, f, s, d)
	<-ctx.Done()
	svc.stopping()
	log.Print("stopping; a running job will resume at the next start")
	return nil
}

// once runs one upgrade in the foreground, in a worker as the daemon's jobs
// run; with --activate the worker also verifies the new slot and makes it
// the next boot, through an in-process security service.
func once(ctx context.Context, run *worker.Runner, s worker.Settings, fc daemon.FileConfig, f flags, svc *service) error {
	req := worker.Request{Mode: worker.ModeUpgrade, Settings: s, Version: layout.Version(f.version)}
	var last time.Time // Handler calls come from Run's goroutine alone
	h := worker.Handler{Progress: func(p report.Progress) {
		if time.Since(last) > time.Second || p.Phase == report.PhaseDone {
			last = time.Now()
			log.Printf("%-11s %3.0f%% %d/%d bytes", p.Phase, p.Percent(), p.BytesDone, p.BytesTotal)
		}
	}}
	if f.activate {
		req.Activate, req.Tries = true, fc.Tries
	}
	var (
		res  *report.Result
		next *worker.Activated
	)
	attempt := func(ctx context.Context) error {
		out, err := run.Run(ctx, req, h)
		next = out.Next
		if r := out.Result; r != nil {
			if res != nil {
				r.Fetched += res.Fetched
			}
			res = r
		}
		return err
	}
	var err error
	if svc.mon != nil {
		// Wait for a route, and pause over a lost link instead of failing.
		err = svc.mon.Persist(ctx, s.Mirrors, f.networkWait, attempt)
	} else {
		err = attempt(ctx)
	}
	if err != nil {
		return err
	}
	fmt.Printf("slot %s holds version %d (from %d): keep %d, link %d, copy %d, delta %d, object %d; fetched %d bytes\n",
		res.Slot, res.Version, res.From, res.Counts[report.Keep], res.Counts[report.Link], res.Counts[report.Copy], res.Counts[report.Delta], res.Counts[report.Object], res.Fetched)
	if next != nil {
		fmt.Printf("next boot: slot %s, version %d (on trial)\n", next.Slot, next.Version)
	}
	return nil
}

// reloadOnHUP re-reads the config at every SIGHUP (systemctl reload) and
// hands it to the daemon for the next check or job. A file that does not
// parse changes nothing. Trusted keys stay those read at start: the
// security service, which alone decides what boots, reads its own.
func reloadOnHUP(ctx context.Context, f flags, started worker.Settings, d *daemon.Daemon) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		s, fc, err := settings(f)
		if err != nil {
			log.Printf("reload: %v; keeping the settings in force", err)
			continue
		}
		s.Keys, s.TrustedRoot = started.Keys, started.TrustedRoot
		d.Reload(s, fc.Tries)
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

// workerName is the job worker's executable (cmd/upgrade-worker).
const workerName = "upgrade-worker"

// runner starts job workers from path, or else from where make install
// puts upgrade-worker: beside upgraded (a build tree's bin/), or in
// PREFIX/libexec/upgrade when upgraded is PREFIX/bin/upgraded. The file is
// pinned at start (worker.Pin): the daemon and its workers are always one
// build.
func runner(path string) (*worker.Runner, error) {
	if path != "" {
		return worker.Pin(path)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", workerName, err)
	}
	dir := filepath.Dir(exe)
	tried := []string{filepath.Join(dir, workerName), filepath.Join(dir, "..", "libexec", "upgrade", workerName)}
	for _, p := range tried {
		if r, err := worker.Pin(filepath.Clean(p)); err == nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("no job worker: none of %s is an executable (--worker names it): %w", strings.Join(tried, ", "), errdefs.ErrNotFound)
}
