// Package testrepo publishes sample versions into a repository and serves
// it over HTTP on [::1], as tests and the demo need: a real repository made
// by the real publisher, on a real IPv6 socket.
package testrepo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// Channel is the channel test repositories publish to.
const Channel = "stable"

// Repo is a published repository.
type Repo struct {
	Dir   string
	Key   repo.PrivateKey
	Keys  repo.Keyring
	Trees []string // source tree of version i+1
	// Best publishes with publish.Options.Best (the zstd and xz commands).
	Best bool
	// DeliverySpec is publish.Options.DeliverySpec (0: the default).
	DeliverySpec int
}

// New returns a private copy of a repository with versions 1..n of the
// sample tree. The versions are published once per test process (publishing
// at the best compression is the slow part, especially under -race) and
// copied for each caller, which may then publish more. The source trees are
// shared and must be treated as read-only.
func New(t testing.TB, n int) *Repo {
	t.Helper()
	base := published(t, n)
	parent := t.TempDir()
	os.Chmod(parent, 0755)
	dir := filepath.Join(parent, "repo")
	if out, err := exec.Command("cp", "-a", base.Dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy repository: %v %s", err, out)
	}
	return &Repo{Dir: dir, Key: base.Key, Keys: base.Keys, Trees: base.Trees}
}

var cache struct {
	sync.Mutex
	dir   string
	repos map[int]*Repo
}

func published(t testing.TB, n int) *Repo {
	cache.Lock()
	defer cache.Unlock()
	if r := cache.repos[n]; r != nil {
		return r
	}
	if cache.dir == "" {
		d, err := os.MkdirTemp("", "testrepo-cache-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0755)
		cache.dir, cache.repos = d, map[int]*Repo{}
	}
	base := filepath.Join(cache.dir, fmt.Sprint(n))
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	r := &Repo{Dir: filepath.Join(base, "repo"), Key: k, Keys: repo.Keyring{k.ID: k.Public()}}
	for v := 1; v <= n; v++ {
		tree := filepath.Join(base, "tree", fmt.Sprint(v))
		if err := testtree.Build(tree, v); err != nil {
			t.Fatal(err)
		}
		r.Trees = append(r.Trees, tree)
		r.Publish(t, tree)
	}
	cache.repos[n] = r
	return r
}

// Cleanup removes the published cache; call it from TestMain after m.Run.
func Cleanup() {
	cache.Lock()
	defer cache.Unlock()
	if cache.dir != "" {
		os.RemoveAll(cache.dir)
		cache.dir, cache.repos = "", nil
	}
}

// Publish adds tree as the next version.
func (r *Repo) Publish(t testing.TB, tree string) publish.Result {
	t.Helper()
	res, err := publish.Add(context.Background(), tree, publish.Options{Repo: r.Dir, Key: r.Key, Channel: Channel, Best: r.Best, DeliverySpec: r.DeliverySpec})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Serve serves dir over HTTP on [::1] until the test ends; returns the base URL.
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// Config returns an engine config for root, fetching from mirrors.
func (r *Repo) Config(t testing.TB, root string, mirrors ...string) *engine.Config {
	t.Helper()
	lr, err := layout.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return &engine.Config{Root: lr, Mirrors: mirrors, Channel: Channel, Keys: r.Keys, Logf: t.Logf}
}

// Provision makes a root at version v served from mirror.
func (r *Repo) Provision(t testing.TB, mirror string, v uint64) (string, *engine.Config) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	cfg := r.Config(t, root, mirror)
	if _, err := engine.Provision(context.Background(), cfg, layout.Version(v)); err != nil {
		t.Fatal(err)
	}
	return root, cfg
}
