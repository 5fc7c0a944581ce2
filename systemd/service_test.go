package systemd_test

import (
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/internal/fakesys"
	"laptop.org/upgrade/internal/testbus"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/repo/sigkey"
	"laptop.org/upgrade/systemd"
)

// throttle serves the repository; the big object trickles while mode is
// 0, blocks while it is 1 (a hung server: with a long stall timeout the
// engine step hangs), and flows freely at 2.
type throttle struct {
	h    http.Handler
	mode atomic.Int32
	big  string
}

func (th *throttle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, th.big) {
		th.h.ServeHTTP(w, r)
		return
	}
	th.h.ServeHTTP(&slowWriter{w: w, th: th, ctx: r}, r)
}

type slowWriter struct {
	w   http.ResponseWriter
	th  *throttle
	ctx *http.Request
}

func (s *slowWriter) Header() http.Header { return s.w.Header() }
func (s *slowWriter) WriteHeader(c int)   { s.w.WriteHeader(c) }
func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		for s.th.mode.Load() == 1 {
			select {
			case <-s.ctx.Context().Done():
				return n, s.ctx.Context().Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		k := min(len(p), 16<<10)
		if s.th.mode.Load() == 0 {
			time.Sleep(100 * time.Millisecond)
		}
		m, err := s.w.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		s.w.(http.Flusher).Flush()
		p = p[k:]
	}
	return n, nil
}

// TestService runs upgraded as systemd would (NOTIFY_SOCKET, WATCHDOG_USEC)
// on a private bus with securityd and stand-ins for logind and
// NetworkManager, and checks: READY=1 only once the name is owned; STATUS
// lines; a background job refused on a metered connection with the reason in
// LastError; watchdog pings while a job progresses and none while it hangs;
// the inhibitor held only around slot and boot pointer writes and released
// at the end.
func TestService(t *testing.T) {
	binDir := os.Getenv("UPGRADE_BIN")
	if binDir == "" {
		t.Fatal("UPGRADE_BIN is not set: run through `make gotest` (it builds ./bin)")
	}
	// Repository: version 2 adds 1 MiB of random bytes (one big object).
	rp := testrepo.New(t, 1)
	tree := filepath.Join(t.TempDir(), "v2")
	if err := testtree.Build(tree, 2); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	rand.New(rand.NewSource(7)).Read(big)
	os.WriteFile(filepath.Join(tree, "usr", "big.bin"), big, 0o644)
	rp.Publish(t, tree)
	th := &throttle{h: http.FileServer(http.Dir(rp.Dir))}
	th.big = bigObject(t, rp.Dir, 1<<20)
	th.mode.Store(2)
	mirror := testrepo.Serve(t, th)
	root, _ := rp.Provision(t, mirror, 1)
	keys := filepath.Join(t.TempDir(), "keys")
	os.Mkdir(keys, 0o755)
	for id, k := range rp.Keys {
		os.WriteFile(filepath.Join(keys, id+".pub"), sigkey.MarshalPublic(k), 0o644)
	}
	// The config lives outside the root: R/etc is the running slot's, and
	// securityd verifies that slot whole before its first activation.
	conf := filepath.Join(t.TempDir(), "upgraded.conf")
	os.WriteFile(conf, []byte("channel = stable\nstall_timeout = 10m\n"), 0o644)
	th.mode.Store(0)

	b := testbus.Start(t)
	ld := fakesys.StartLogind(t, b)
	nm := fakesys.StartNM(t, b, fakesys.MeteredYes)
	conn := b.Conn(t)
	run(t, b, nil, filepath.Join(binDir, "securityd"), "--root", root, "--keys", keys)
	waitOwner(t, conn, dbusapi.SecurityName)

	notes := systemd.NotifySocketForTest(t)
	var statusMu sync.Mutex
	var statuses []string
	run(t, b, []string{"WATCHDOG_USEC=2000000"}, filepath.Join(binDir, "upgraded"), "--root", root, "--config", conf, "--keys", keys, "--mirror", mirror)
	first := systemd.RecvForTest(t, notes)
	if !strings.HasPrefix(first, "READY=1\nSTATUS=") {
		t.Fatalf("first notification %q, want READY=1 with a status", first)
	}
	if !hasOwner(t, conn, dbusapi.UpgradeName) {
		t.Fatal("READY=1 before org.laptop.Upgrade1 was owned")
	}
	// Collect from here on; pings are counted per status line.
	pings := map[string]int{}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cur := strings.TrimPrefix(strings.SplitN(first, "\n", 2)[1], "STATUS=")
		for {
			select {
			case <-stop:
				return
			case s := <-notes:
				mu.Lock()
				switch {
				case s == "WATCHDOG=1":
					pings[phaseOf(cur)]++
				case strings.HasPrefix(s, "STATUS="):
					cur = strings.TrimPrefix(s, "STATUS=")
					statusMu.Lock()
					statuses = append(statuses, cur)
					statusMu.Unlock()
				}
				mu.Unlock()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	count := func(phase string) int { mu.Lock(); defer mu.Unlock(); return pings[phase] }
	poll(t, "an idle ping", func() bool { return count("idle") > 0 })

	obj := conn.Object(dbusapi.UpgradeName, dbusapi.UpgradePath)
	prop := func(name string) string {
		v, err := obj.GetProperty(dbusapi.UpgradeInterface + "." + name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Trim(v.String(), `"`)
	}
	// A background job on a metered connection is refused, with the reason.
	var job uint32
	if err := obj.Call(dbusapi.UpgradeInterface+".Upgrade", 0, "", map[string]dbus.Variant{"background": dbus.MakeVariant(true)}).Store(&job); err != nil {
		t.Fatal(err)
	}
	poll(t, "the background job to be refused", func() bool { return prop("LastError") == dbusapi.ErrPolicy })
	if msg := prop("LastErrorMessage"); !strings.Contains(msg, "metered") {
		t.Fatalf("LastErrorMessage %q does not say why", msg)
	}
	if n := len(ld.Locks()); n != 0 {
		t.Fatalf("a refused job took %d inhibitor locks", n)
	}

	// An interactive job on the same connection runs; its download
	// trickles, then hangs.
	if err := obj.Call(dbusapi.UpgradeInterface+".Upgrade", 0, "", map[string]dbus.Variant{}).Store(&job); err != nil {
		t.Fatal(err)
	}
	poll(t, "pings while downloading", func() bool { return count("downloading") >= 2 })
	if n := ld.HeldCount(); n != 0 || len(ld.Locks()) == 0 {
		t.Errorf("while downloading: %d locks held of %d taken; want the clone's lock taken and released", n, len(ld.Locks()))
	}
	th.mode.Store(1)
	time.Sleep(time.Second) // let in-flight pings arrive
	before := count("downloading") + count("idle")
	time.Sleep(6 * time.Second) // three watchdog intervals
	if after := count("downloading") + count("idle"); after != before {
		t.Errorf("%d watchdog pings while the job hung; a hung job must not be pinged", after-before)
	}
	th.mode.Store(2)
	poll(t, "the job to finish", func() bool { return prop("State") == "ready-to-reboot" })
	if e := prop("LastError"); e != "" {
		t.Fatalf("job failed: %s %s", e, prop("LastErrorMessage"))
	}
	locks := ld.Locks()
	if n := ld.HeldCount(); n != 0 {
		t.Errorf("%d inhibitor locks still held after the job", n)
	}
	// Clone (with the boot pointer invalidation), apply, activation.
	if len(locks) < 3 {
		t.Errorf("%d inhibitor locks taken, want at least 3 (clone, apply, activation): %+v", len(locks), locks)
	}
	for _, l := range locks {
		if l.What != "shutdown:sleep" || l.Mode != "block" {
			t.Errorf("lock %+v", l)
		}
	}
	poll(t, "a ready STATUS line", func() bool {
		statusMu.Lock()
		defer statusMu.Unlock()
		return len(statuses) > 0 && strings.Contains(statuses[len(statuses)-1], "ready")
	})
	statusMu.Lock()
	t.Logf("status lines: %q", statuses)
	statusMu.Unlock()
	nm.SetMetered(fakesys.MeteredNo)
}

func phaseOf(status string) string {
	for _, p := range []string{"idle", "downloading", "cloning", "applying", "verifying", "activating", "checking", "ready"} {
		if strings.Contains(status, p) {
			return p
		}
	}
	return status
}

// bigObject finds the stored object of the given size in the repository.
func bigObject(t *testing.T, dir string, min int64) string {
	var found string
	filepath.Walk(filepath.Join(dir, "objects"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Size() >= min {
			found = filepath.Base(p)
		}
		return nil
	})
	if found == "" {
		t.Fatal("no big object in the repository")
	}
	return found
}

func run(t *testing.T, b *testbus.Bus, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(b.Env(), env...)
	var out strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("%s:\n%s", filepath.Base(name), out.String())
			mu.Unlock()
		}
	})
	return cmd
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func hasOwner(t *testing.T, conn *dbus.Conn, name string) bool {
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err != nil {
		t.Fatal(err)
	}
	return has
}

func waitOwner(t *testing.T, conn *dbus.Conn, name string) {
	poll(t, name+" to be owned", func() bool { return hasOwner(t, conn, name) })
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
