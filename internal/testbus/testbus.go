// Package testbus runs a private, system-like D-Bus for tests: a real
// dbus-daemon with Debian's system bus policy and the project's policy files
// (systemd/dbus/*.conf), and optionally a real polkitd with the project's
// actions (systemd/polkit/*.policy) and rules chosen by the test.
//
// It exists so that tests of the daemon, the security service and the
// clients meet the same access control as production — a policy file that
// denies too much or too little fails a test, not a laptop. It never touches
// the machine's own bus or environment: callers pass Bus.Addr or Bus.Env()
// to what they start. Everything is stopped and removed at test cleanup.
//
// Most of it needs root (owning the project's names, setpriv, mount
// namespaces); the packages it runs are listed in scripts/deps.d/dbus.txt.
package testbus

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// EnvVar is the variable that points godbus, busctl, gdbus, dbus-send and
// python's dbus.SystemBus() at a system bus.
const EnvVar = "DBUS_SYSTEM_BUS_ADDRESS"

// startTimeout bounds how long a daemon may take to become ready; both start
// in well under a second here, so hitting it means something is broken.
const startTimeout = 10 * time.Second

// Bus is a running private system-like bus.
type Bus struct {
	// Addr is the bus address, "unix:path=Dir/bus".
	Addr string
	// Dir holds the bus's config, socket, logs and the copies of the
	// project's policy files. It is world-readable (not t.TempDir, which is
	// private to root) so that callers running as nobody and polkitd
	// (which drops to the polkitd user) can reach the socket.
	Dir string
	// ServiceDir is the bus's <servicedir>: drop a .service file here for
	// bus activation (dbus-daemon rescans it when a name is not found).
	// Activated services run as the bus's user (no setuid helper) with
	// DBUS_SYSTEM_BUS_ADDRESS set. Stopping the bus does not kill them:
	// they must exit when their connection closes (dbus-python and
	// godbus's conn.Context() make that easy).
	ServiceDir string

	cmd *exec.Cmd
	log *syncBuffer
}

// Start runs a dbus-daemon configured like the system bus and stops it at
// t's cleanup.
func Start(t testing.TB) *Bus {
	t.Helper()
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("testbus: dbus-daemon not found (run `make deps`; scripts/deps.d/dbus.txt): %v", err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("testbus: %v", err)
	}
	dir, err := os.MkdirTemp("", "testbus-")
	if err != nil {
		t.Fatalf("testbus: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := &Bus{
		Addr:       "unix:path=" + filepath.Join(dir, "bus"),
		Dir:        dir,
		ServiceDir: filepath.Join(dir, "services"),
		log:        &syncBuffer{},
	}
	conf, err := prepare(root, dir)
	if err != nil {
		t.Fatalf("testbus: %v", err)
	}

	// --print-address=3 writes the address once the socket listens: a
	// readiness signal without polling.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatalf("testbus: %v", err)
	}
	defer pr.Close()
	b.cmd = exec.Command(daemon, "--config-file="+conf, "--nofork", "--print-address=3")
	b.cmd.ExtraFiles = []*os.File{pw}
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		pw.Close()
		t.Fatalf("testbus: start dbus-daemon: %v", err)
	}
	pw.Close()
	t.Cleanup(func() { b.stop(t) })

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(pr).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if !strings.HasPrefix(s, "unix:") {
			t.Fatalf("testbus: dbus-daemon did not start: %q (log below)", s)
		}
	case <-time.After(startTimeout):
		t.Fatalf("testbus: dbus-daemon not ready after %v (log below)", startTimeout)
	}
	return b
}

// Prepare writes a system-like bus configuration into dir (socket dir/bus,
// service dir dir/services, a copy of the project's policy files) and
// returns the config file and the bus address. `make demo` uses it to run
// the same bus the tests do.
func Prepare(dir string) (conf, addr string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	conf, err = prepare(root, dir)
	return conf, "unix:path=" + filepath.Join(dir, "bus"), err
}

func prepare(root, dir string) (string, error) {
	policyDir := filepath.Join(dir, "system.d")
	for _, d := range []string{filepath.Join(dir, "services"), policyDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	// A copy, not the repository's directory: dbus-daemon reloads its
	// includedirs on change, and the files may be edited while tests run.
	if err := copyGlob(filepath.Join(root, "systemd", "dbus", "*.conf"), policyDir); err != nil {
		return "", fmt.Errorf("copy policy files: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "bus.conf")
	err := writeBusConfig(conf, busConfig{
		socket:     filepath.Join(dir, "bus"),
		serviceDir: filepath.Join(dir, "services"),
		policyDir:  policyDir,
	})
	return conf, err
}

// stop ends the daemon and, if the test failed, shows what it logged
// (policy denials are logged there, which is usually the answer).
func (b *Bus) stop(t testing.TB) {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	if t.Failed() {
		t.Logf("testbus: dbus-daemon log:\n%s", b.log)
	}
}

// Env returns os.Environ() with DBUS_SYSTEM_BUS_ADDRESS pointing at b, for
// child processes; the test process's own environment is left alone.
func (b *Bus) Env() []string {
	env := []string{EnvVar + "=" + b.Addr}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvVar+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// Conn returns a private connection to b (authenticated as the current
// user, Hello done), closed at t's cleanup.
func (b *Bus) Conn(t testing.TB) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(b.Addr)
	if err != nil {
		t.Fatalf("testbus: connect to %s: %v", b.Addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Command returns a command running name as uid (and that user's primary
// group, or gid = uid without a passwd entry) with supplementary groups
// cleared, via setpriv, with b's address in its environment. The caller
// must be root. The uid needs a passwd entry to connect at all; nobody
// (65534) exists on Debian.
func (b *Bus) Command(uid int, name string, args ...string) *exec.Cmd {
	gid := uid
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if g, err := strconv.Atoi(u.Gid); err == nil {
			gid = g
		}
	}
	argv := append([]string{
		"--reuid=" + strconv.Itoa(uid),
		"--regid=" + strconv.Itoa(gid),
		"--clear-groups",
		name,
	}, args...)
	cmd := exec.Command("setpriv", argv...)
	cmd.Env = b.Env()
	// A working directory every user may enter; the test's may be private.
	cmd.Dir = "/"
	return cmd
}

// RepoRoot finds the module root by walking up from the working directory
// (a test runs in its package's directory) to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// copyGlob copies the files matching pattern into dir, readable by all.
func copyGlob(pattern, dir string) error {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// syncBuffer collects a child's output; exec copies into it from its own
// goroutine while a test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
