package sugartest

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testbus"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo/sigkey"
)

// bigSize is the size of an incompressible file that only version 2 has:
// the download is then one large object, and holding it after holdBytes
// shows the progress bar part-way (holdBytes/bigSize, about 40 %).
const (
	bigSize   = 4 << 20
	holdBytes = 1600 << 10
)

// nameTimeout bounds how long a daemon may take to own its bus name; both
// need well under a second, so hitting it means something is broken.
const nameTimeout = 60 * time.Second

// fixture is everything the Python tests drive: a repository with versions
// 1 and 2 behind a Gate, a private system bus with a stand-in logind, and
// securityd and upgraded from UPGRADE_BIN on a root provisioned at
// version 1. The control server (control_test.go) exposes it.
type fixture struct {
	t      *testing.T
	bin    string
	out    string // daemon logs, screenshots
	base   string // roots live here
	bus    *testbus.Bus
	conn   *dbus.Conn
	repo   *testrepo.Repo
	gate   *Gate
	mirror string
	keys   string
	login1 *login1

	mu        sync.Mutex // serialises control requests
	root      string
	securityd *proc
	upgraded  *proc
}

func newFixture(t *testing.T, out string) *fixture {
	t.Helper()
	bin := os.Getenv("UPGRADE_BIN")
	for _, b := range []string{"securityd", "upgraded"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("UPGRADE_BIN=%q: %v (make sugartest builds it)", bin, err)
		}
	}
	f := &fixture{t: t, bin: bin, out: out, base: t.TempDir()}
	f.bus = testbus.Start(t)
	f.conn = f.bus.Conn(t)

	f.repo = testrepo.New(t, 1)
	tree := filepath.Join(t.TempDir(), "v2")
	if err := testtree.Build(tree, 2); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, bigSize)
	rand.New(rand.NewSource(2)).Read(big)
	bigPath := filepath.Join(tree, "usr", "share", "sugar-big.bin")
	if err := os.WriteFile(bigPath, big, 0o644); err != nil {
		t.Fatal(err)
	}
	one := time.Unix(1, 0)
	if err := os.Chtimes(bigPath, one, one); err != nil {
		t.Fatal(err)
	}
	f.repo.Publish(t, tree)

	f.keys = filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(f.keys, 0o755); err != nil {
		t.Fatal(err)
	}
	pub := f.repo.Key.Public()
	if err := os.WriteFile(filepath.Join(f.keys, pub.ID+".pub"), sigkey.MarshalPublic(pub), 0o644); err != nil {
		t.Fatal(err)
	}

	f.gate = NewGate(http.FileServer(http.Dir(f.repo.Dir)))
	f.mirror = testrepo.Serve(t, f.gate)
	f.login1 = startLogin1(t, f.bus, f.conn)
	// Cleanups run last-registered first: stop the daemons and free held
	// requests before the server and the bus go away.
	t.Cleanup(f.stopDaemons)
	t.Cleanup(f.gate.Release)
	return f
}

// reset gives the next test a fresh root at version 1 with both daemons
// running, the mirror working and no reboot requested.
func (f *fixture) reset() error {
	f.stopDaemons()
	f.gate.Release()
	f.gate.SetDown(false)
	f.login1.clear()
	if f.root != "" {
		if err := os.RemoveAll(filepath.Dir(f.root)); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp(f.base, "root-")
	if err != nil {
		return err
	}
	f.root = filepath.Join(dir, "root")
	lr, err := layout.New(f.root)
	if err != nil {
		return err
	}
	cfg := &engine.Config{Root: lr, Mirrors: []string{f.mirror}, Channel: testrepo.Channel, Keys: f.repo.Keys}
	if _, err := engine.Provision(context.Background(), cfg, 1); err != nil {
		return fmt.Errorf("provision version 1: %w", err)
	}
	if f.securityd, err = f.start("securityd", "--root", f.root, "--keys", f.keys); err != nil {
		return err
	}
	if err := f.waitName("org.laptop.Security1", f.securityd); err != nil {
		return err
	}
	return f.startUpgraded()
}

func (f *fixture) startUpgraded() error {
	var err error
	f.upgraded, err = f.start("upgraded", "--root", f.root, "--keys", f.keys, "--mirror", f.mirror)
	if err != nil {
		return err
	}
	return f.waitName("org.laptop.Upgrade1", f.upgraded)
}

// killUpgraded ends the daemon as a crash or a power cut would.
func (f *fixture) killUpgraded() {
	f.upgraded.stop(syscall.SIGKILL)
	f.upgraded = nil
}

func (f *fixture) stopDaemons() {
	f.upgraded.stop(syscall.SIGTERM)
	f.securityd.stop(syscall.SIGTERM)
	f.upgraded, f.securityd = nil, nil
}

// waitName polls until name has an owner on the bus, or p exits.
func (f *fixture) waitName(name string, p *proc) error {
	deadline := time.Now().Add(nameTimeout)
	for {
		var has bool
		err := f.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has)
		if err != nil {
			return fmt.Errorf("NameHasOwner %s: %w", name, err)
		}
		if has {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before owning %s (log: %s)", p.name, name, p.log)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not own %s within %v (log: %s)", p.name, name, nameTimeout, p.log)
		}
	}
}

// proc is a daemon started from UPGRADE_BIN, logging to out/<name>.log.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (f *fixture) start(name string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(f.out, name+".log"), done: make(chan struct{})}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "--- %s %v\n", time.Now().Format(time.TimeOnly), args)
	p.cmd = exec.Command(filepath.Join(f.bin, name), args...)
	p.cmd.Env = f.bus.Env()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// stop signals p and waits for it to exit, killing it if it lingers.
func (p *proc) stop(sig syscall.Signal) {
	if p == nil {
		return
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
