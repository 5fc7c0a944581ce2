// Package nettest runs the daemon's clients against mirrors across network
// namespaces: IPv6-only and link-local mirrors, a link lost mid-download,
// packet loss (nftables), a rate cap (tc tbf), a stalling server (a proxy
// of ours), and a school server that is a stock nginx cache. Every client
// and server runs under `ip netns exec`; nothing touches the host network.
package nettest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/netns"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo/sigkey"
)

// bigSize is an incompressible file added in version 2, so that a download
// lasts long enough under a rate cap to be interrupted.
const bigSize = 2 << 20

// runTimeout bounds every client run: "never hangs" is checked, not hoped.
const runTimeout = 4 * time.Minute

func bin(t *testing.T, name string) string {
	t.Helper()
	d := os.Getenv("UPGRADE_BIN")
	if d == "" {
		t.Fatal("UPGRADE_BIN is not set: run through `make gotest` (it builds ./bin)")
	}
	return filepath.Join(d, name)
}

// fixture is a repository with versions 1 and 2 (2 carries bigSize of new
// random bytes) and trusted keys on disk.
type fixture struct {
	rp   *testrepo.Repo
	keys string
}

func newFixture(t *testing.T) fixture {
	rp := testrepo.New(t, 1)
	tree := filepath.Join(t.TempDir(), "v2")
	if err := testtree.Build(tree, 2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr", "big.bin"), randomBytes(bigSize), 0o644); err != nil {
		t.Fatal(err)
	}
	rp.Publish(t, tree)
	keys := filepath.Join(t.TempDir(), "keys")
	os.Mkdir(keys, 0o755)
	for id, k := range rp.Keys {
		if err := os.WriteFile(filepath.Join(keys, id+".pub"), sigkey.MarshalPublic(k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{rp: rp, keys: keys}
}

// root provisions a fresh root at version 1 (over loopback in the test's
// own namespace) with an upgraded.conf holding conf lines.
func (f fixture) root(t *testing.T, conf string) string {
	t.Helper()
	url := testrepo.Serve(t, fileServer(f.rp.Dir))
	root, _ := f.rp.Provision(t, url, 1)
	lr, _ := layout.New(root)
	if err := os.MkdirAll(lr.KeysDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(f.keys)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(f.keys, e.Name()))
		os.WriteFile(filepath.Join(lr.KeysDir(), e.Name()), b, 0o644)
	}
	conf = "channel = " + testrepo.Channel + "\n" + conf
	if err := os.WriteFile(lr.DaemonConfig(), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// installed checks that the inactive slot holds version 2, verified (the
// engine records a slot only after verifying it).
func installed(t *testing.T, root string) {
	t.Helper()
	lr, _ := layout.New(root)
	inst, err := engine.LoadInstalled(lr, "b")
	if err != nil || inst.Version != 2 {
		t.Fatalf("slot b: %+v, %v; want version 2", inst, err)
	}
}

// proc is a process in a namespace, killed at cleanup.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	err  error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, ns string, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: netns.Command(ns, name, args...), out: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Its own process group, so that cleanup also ends children (nginx's
	// workers) that would otherwise outlive it holding the output pipe.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), p.out)
		}
	})
	return p
}

// wait waits for the process, bounded by runTimeout.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(runTimeout):
		t.Fatalf("%s still running after %v: it hangs\n%s", p.cmd.Args, runTimeout, p.out)
	}
	return nil
}

// upgrade runs `upgraded --once` in the client namespace and returns its
// output and error.
func upgrade(t *testing.T, ns, root, mirror string, env ...string) (string, error) {
	t.Helper()
	args := []string{"--once", "--root", root, "--network-wait", "60s"}
	if mirror != "" {
		args = append(args, "--mirror", mirror)
	}
	p := start(t, ns, env, bin(t, "upgraded"), args...)
	err := p.wait(t)
	return p.out.String(), err
}

var fetchedRE = regexp.MustCompile(`fetched (\d+) bytes`)

func fetched(t *testing.T, out string) int64 {
	m := fetchedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no fetched count in:\n%s", out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// serve runs `upgrade-publish serve` in ns on listen and waits until it
// accepts connections.
func serve(t *testing.T, ns, dir, listen string) {
	t.Helper()
	p := start(t, ns, nil, bin(t, "upgrade-publish"), "serve", "--repo", dir, "--listen", listen)
	waitFor(t, "upgrade-publish to listen", func() bool { return bytes.Contains([]byte(p.out.String()), []byte("serving")) })
}

// waitFor polls cond generously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// canConnect: a TCP connection from ns to [addr]:port succeeds.
func canConnect(ns, addr string, port int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", addr, port))
	return cmd.Run() == nil
}

// randomBytes is incompressible, so the object is as big as the file.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(42)).Read(b)
	return b
}
