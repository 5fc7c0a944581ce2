// Package e2e proves the running system with real components: a private
// system-like dbus-daemon (internal/testbus), the real securityd and
// upgraded binaries as separate processes on a provisioned root, a
// repository published by the real publisher and served over HTTP on
// [::1], and the real clients (busctl, gdbus, dbus-send, Python with
// dbus-python and GLib, upgradectl). Nothing is mocked; the tests only add a
// web server they can slow down, hold, break and count.
//
// Every test needs root (owning org.laptop.*, setpriv, polkitd's mount
// namespace, tmpfs) and the packages in scripts/deps.d/dbus.txt and e2e.txt.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/internal/testbus"
	"laptop.org/upgrade/layout"
)

func bin(name string) string { return filepath.Join(binDir, name) }

// readyTimeout bounds a daemon's start; both are ready in well under a
// second, so this only matters on a badly loaded machine.
const readyTimeout = 30 * time.Second

// jobTimeout bounds one upgrade of the sample versions from start to
// Finished, generous for a loaded 2-core machine.
const jobTimeout = 2 * time.Minute

// proc is a daemon started by a test: its output is kept and shown when the
// test fails, and it is killed at cleanup on every path.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
}

// logBuffer collects a child's output while the test reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill9 kills the process the way a power cut or the OOM killer does, and
// waits until it is gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(readyTimeout):
		t.Fatalf("%s did not die after SIGKILL", p.name)
	}
}

// env is one machine: a repository and its server, a provisioned root, a
// bus, and the two daemons.
type env struct {
	t      *testing.T
	rp     *pubRepo
	srv    *repoServer
	bus    *testbus.Bus
	root   string
	lr     layout.Root
	mirror string // what upgraded is told; srv.URL unless a test says otherwise

	mu       sync.Mutex
	procs    []*proc
	upgraded *proc
	security *proc
}

// envOpts changes how newEnv sets a machine up.
type envOpts struct {
	mirror string // mirror given to upgraded (default: the test server)
	rootIn string // directory to put the root in (default a new temporary one)
}

// newEnv makes a fresh root at version 1 of rp (served by a new counting
// server), starts a bus, securityd and upgraded, and waits until both own
// their names.
func newEnv(t *testing.T, rp *pubRepo, o envOpts) *env {
	t.Helper()
	e := &env{t: t, rp: rp}
	e.srv = newRepoServer(t, rp.Dir)
	dir := o.rootIn
	if dir == "" {
		dir = t.TempDir()
	}
	e.root = rp.provisionInto(t, dir)
	var err error
	if e.lr, err = layout.New(e.root); err != nil {
		t.Fatal(err)
	}
	e.mirror = e.srv.URL
	if o.mirror != "" {
		e.mirror = o.mirror
	}
	e.bus = testbus.Start(t)
	t.Cleanup(e.stopAll)
	e.startSecurityd()
	e.startUpgraded()
	return e
}

// start runs one of the project's binaries on the bus and waits until it
// owns busName.
func (e *env) start(name, busName string, args ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, log: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin(name), args...)
	p.cmd.Env = e.bus.Env()
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// The daemons must not outlive a test binary killed by a timeout.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	e.waitName(p, busName)
	return p
}

// waitName polls the bus until busName has an owner, failing early if the
// process dies first.
func (e *env) waitName(p *proc, busName string) {
	e.t.Helper()
	conn := e.conn()
	deadline := time.Now().Add(readyTimeout)
	for {
		var has bool
		if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, busName).Store(&has); err != nil {
			e.t.Fatalf("NameHasOwner(%s): %v", busName, err)
		}
		if has {
			return
		}
		if p.exited() {
			e.t.Fatalf("%s exited before owning %s:\n%s", p.name, busName, p.log)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s did not own %s within %v:\n%s", p.name, busName, readyTimeout, p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) startSecurityd() {
	e.t.Helper()
	e.security = e.start("securityd", dbusapi.SecurityName, "--root", e.root, "--keys", e.rp.KeysDir)
}

func (e *env) startUpgraded(extra ...string) {
	e.t.Helper()
	args := append([]string{"--root", e.root, "--keys", e.rp.KeysDir, "--mirror", e.mirror}, extra...)
	e.upgraded = e.start("upgraded", dbusapi.UpgradeName, args...)
}

// stopAll ends every process the env started (SIGTERM, then SIGKILL) and
// shows their logs if the test failed. It runs before the bus stops.
func (e *env) stopAll() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if e.t.Failed() {
		for _, p := range procs {
			e.t.Logf("---- %s log ----\n%s", p.name, p.log)
		}
	}
}

// conn is a fresh connection to the bus as root, closed at cleanup.
func (e *env) conn() *dbus.Conn {
	return e.bus.Conn(e.t)
}

// result is what a client command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a client as uid (0 = root, as the test) with the bus in its
// environment, bounded by jobTimeout.
func (e *env) run(uid int, name string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	var cmd *exec.Cmd
	if uid == 0 {
		cmd = exec.CommandContext(ctx, name, args...)
		cmd.Env = e.bus.Env()
	} else {
		c := e.bus.Command(uid, name, args...)
		cmd = exec.CommandContext(ctx, c.Path, c.Args[1:]...)
		cmd.Env, cmd.Dir = c.Env, c.Dir
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			e.t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		}
	}
	return r
}

// ctl runs upgradectl as uid.
func (e *env) ctl(uid int, args ...string) result {
	e.t.Helper()
	return e.run(uid, bin("upgradectl"), args...)
}

// pointer reads the boot pointer file as the initrd would.
func (e *env) pointer() bootptr.Pointer {
	e.t.Helper()
	p, err := bootptr.Read(e.lr.BootPointer())
	if err != nil {
		e.t.Fatalf("read boot pointer: %v", err)
	}
	return p
}
