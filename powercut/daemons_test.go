package powercut

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testbus"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo/sigkey"
	"laptop.org/upgrade/security"
)

// jobTimeout bounds one job from Upgrade (or a restart) to Finished on a
// loaded machine; the paced server makes a job last about a second.
const jobTimeout = 2 * time.Minute

// TestKill9DaemonPair kills the real upgraded, the real securityd, or both,
// with SIGKILL at a random moment of an upgrade driven over a private
// system bus, then starts what was killed again. The job resumes by itself
// (or, when securityd died under an Activate call, fails clearly and the
// next Upgrade finishes it); right after every kill and at the end, the
// pointer names only slots that verify and slot a still verifies.
// UPGRADE_DAEMON_KILLS sets the count (default 10; make crashtest 100).
func TestKill9DaemonPair(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: the daemons own org.laptop.* names on the test bus")
	}
	n := envInt(t, "UPGRADE_DAEMON_KILLS", 10)
	seed := time.Now().UnixNano()
	if s := os.Getenv("UPGRADE_POWERCUT_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (UPGRADE_POWERCUT_SEED replays it)", seed)
	rnd := rand.New(rand.NewSource(seed))
	rp := testrepo.New(t, 2)
	keys := t.TempDir()
	must(t, os.WriteFile(filepath.Join(keys, "test.pub"), sigkey.MarshalPublic(rp.Key.Public()), 0o644))
	// About 32 KiB/s: the download takes most of a second, so kills land in
	// every phase, downloads included.
	url := testrepo.Serve(t, paced{http.FileServer(http.Dir(rp.Dir)), 32 << 10})
	binary(t, "upgraded")
	binary(t, "securityd")
	// Provisioned once (the engine is slow under -race); each machine gets
	// a copy (cp -a keeps hard links, owners and the capability xattrs).
	template, _ := rp.Provision(t, url, 1)

	var span time.Duration
	t.Run("no-kill", func(t *testing.T) {
		m := newMachine(t, rp, template, keys, url)
		start := time.Now()
		if ok, msg := m.waitFinished(m.upgrade()); !ok {
			t.Fatalf("an upgrade without kills failed: %s", msg)
		}
		span = time.Since(start)
		m.checkPointer(true)
	})
	if span == 0 {
		t.Fatal("no baseline")
	}
	t.Logf("a whole job takes %v; kills fall in [0, %v)", span, span*12/10)
	victims := [][]string{{"upgraded"}, {"securityd"}, {"upgraded", "securityd"}}
	for i := 0; i < n; i++ {
		delay := time.Duration(rnd.Int63n(int64(span) * 12 / 10))
		kill := victims[rnd.Intn(len(victims))]
		t.Run(fmt.Sprintf("kill%03d", i), func(t *testing.T) {
			m := newMachine(t, rp, template, keys, url)
			job := m.upgrade()
			time.Sleep(delay)
			for _, name := range kill {
				m.kill9(name)
			}
			state := m.lastState()
			m.checkPointer(false)
			// securityd first, as D-Bus activation would have it back
			// before the resumed job calls it.
			for _, name := range []string{"securityd", "upgraded"} {
				if slices.Contains(kill, name) {
					m.startDaemon(name)
				}
			}
			ok, msg := m.waitFinished(job)
			again := ""
			if !ok {
				// securityd died under Activate (or Invalidate): a clear
				// error, and the next Upgrade finishes from what is built.
				again = fmt.Sprintf("; job %d failed (%s), Upgrade again", job, msg)
				if ok, msg = m.waitFinished(m.upgrade()); !ok {
					t.Fatalf("after killing %v at %v: the next Upgrade failed too: %s", kill, delay, msg)
				}
			}
			m.checkPointer(true)
			t.Logf("killed %v after %v (state %s)%s", kill, delay.Round(time.Millisecond), state, again)
		})
	}
}

// paced serves h at about rate bytes per second per response.
type paced struct {
	h    http.Handler
	rate int
}

func (p paced) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.h.ServeHTTP(&pacedWriter{w, p.rate}, r)
}

type pacedWriter struct {
	http.ResponseWriter
	rate int
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(4<<10, len(b))
		m, err := p.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		time.Sleep(time.Duration(k) * time.Second / time.Duration(p.rate))
		b = b[k:]
	}
	return n, nil
}

// machine is a root provisioned at version 1 with a bus and both daemons.
type machine struct {
	t       *testing.T
	rp      *testrepo.Repo
	root    layout.Root
	keys    string
	url     string
	bus     *testbus.Bus
	conn    *dbus.Conn
	signals chan *dbus.Signal
	procs   map[string]*exec.Cmd
	exited  map[string]chan struct{}
}

func newMachine(t *testing.T, rp *testrepo.Repo, template, keys, url string) *machine {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	run(t, "cp", "-a", template, dir)
	lr, err := layout.New(dir)
	must(t, err)
	m := &machine{t: t, rp: rp, root: lr, keys: keys, url: url, bus: testbus.Start(t),
		procs: map[string]*exec.Cmd{}, exited: map[string]chan struct{}{}}
	m.conn = m.bus.Conn(t)
	must(t, m.conn.AddMatchSignal(dbus.WithMatchInterface(dbusapi.UpgradeInterface), dbus.WithMatchMember("Finished")))
	m.signals = make(chan *dbus.Signal, 16)
	m.conn.Signal(m.signals)
	t.Cleanup(func() {
		for name := range m.procs {
			m.kill9(name)
		}
	})
	m.startDaemon("securityd")
	m.startDaemon("upgraded")
	return m
}

var busNames = map[string]string{"securityd": dbusapi.SecurityName, "upgraded": dbusapi.UpgradeName}

// startDaemon runs bin/<name> on the bus and waits until it owns its name.
func (m *machine) startDaemon(name string) {
	m.t.Helper()
	args := []string{"--root", m.root.Dir, "--keys", m.keys}
	if name == "upgraded" {
		args = append(args, "--mirror", m.url)
	}
	cmd := exec.Command(binary(m.t, name), args...)
	cmd.Env = m.bus.Env()
	out := &boot{} // collects output like a console
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(m.t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.procs[name], m.exited[name] = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		var has bool
		must(m.t, m.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, busNames[name]).Store(&has))
		if has {
			return
		}
		select {
		case <-done:
			m.t.Fatalf("%s exited before owning its name:\n%s", name, out.console())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s did not own its name in 30 s:\n%s", name, out.console())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *machine) kill9(name string) {
	if cmd := m.procs[name]; cmd != nil {
		cmd.Process.Signal(syscall.SIGKILL)
		<-m.exited[name]
		delete(m.procs, name)
	}
}

func (m *machine) upgrade() uint32 {
	m.t.Helper()
	var job uint32
	obj := m.conn.Object(dbusapi.UpgradeName, dbusapi.UpgradePath)
	must(m.t, obj.Call(dbusapi.UpgradeInterface+".Upgrade", 0, "", map[string]dbus.Variant{}).Store(&job))
	return job
}

// lastState names the phase the engine's journal recorded at the kill.
func (m *machine) lastState() string {
	j, err := engine.LoadJournal(m.root)
	switch {
	case err != nil:
		return "journal unreadable"
	case j != nil:
		return string(j.Phase)
	}
	if inst, _ := engine.LoadInstalled(m.root, layout.SlotB); inst != nil {
		return "built or activating"
	}
	return "no journal yet"
}

// waitFinished waits for Finished(job) and returns success and message.
func (m *machine) waitFinished(job uint32) (bool, string) {
	m.t.Helper()
	timeout := time.After(jobTimeout)
	for {
		select {
		case s := <-m.signals:
			if len(s.Body) == 4 && s.Body[0] == job {
				ok, _ := s.Body[1].(bool)
				name, _ := s.Body[2].(string)
				msg, _ := s.Body[3].(string)
				return ok, name + ": " + msg
			}
		case <-timeout:
			m.t.Fatalf("no Finished for job %d within %v", job, jobTimeout)
		}
	}
}

// checkPointer asserts invariant 2 from outside the daemons: the pointer's
// next and good slots verify with the security service's own code, slot a
// among them until activation; with done, slot b is next on trial.
func (m *machine) checkPointer(done bool) {
	m.t.Helper()
	p, err := bootptr.Read(m.root.BootPointer())
	if err != nil {
		m.t.Fatalf("boot pointer: %v", err)
	}
	sec := &security.Service{Root: m.root, Keys: m.rp.Keys}
	for _, sl := range []layout.Slot{p.Next, p.Good, layout.SlotA} {
		if _, err := sec.Verify(context.Background(), sl); err != nil {
			m.t.Fatalf("pointer %+v: slot %s does not verify: %v", p, sl, err)
		}
	}
	if done && (p.Next != layout.SlotB || !p.Trial) {
		m.t.Fatalf("after the job the pointer is %+v, want slot b next on trial", p)
	}
}
