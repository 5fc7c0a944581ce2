package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/internal/tuftest"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// fixture is one repository shared by every test of the package (publishing
// with the best zstd level takes seconds): versions 1 and 2 of the sample
// tree, and the timestamp as it was when only version 1 existed (version
// 1), which the rollback and replay attacks serve.
type fixture struct {
	dir      string // repository
	key      repo.PrivateKey
	keys     repo.Keyring
	oldIndex []byte            // timestamp.json version 1: version 1 only
	index    []byte            // timestamp.json version 2: versions 1 and 2
	meta     map[string][]byte // the current timestamp, snapshot and targets
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
	fixTmp  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixTmp != "" {
		os.RemoveAll(fixTmp)
	}
	os.Exit(code)
}

func shared(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func buildFixture() (*fixture, error) {
	tmp, err := os.MkdirTemp("", "hostile-fixture-")
	if err != nil {
		return nil, err
	}
	fixTmp = tmp
	os.Chmod(tmp, 0755)
	k, err := sigkey.GenerateKey()
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: filepath.Join(tmp, "repo"), key: k, keys: repo.Keyring{k.ID: k.Public()}}
	for v := 1; v <= 2; v++ {
		tree := filepath.Join(tmp, "tree", fmt.Sprint(v))
		if err := testtree.Build(tree, v); err != nil {
			return nil, err
		}
		o := publish.Options{Repo: f.dir, Key: k, Channel: testrepo.Channel}
		if _, err := publish.Add(context.Background(), tree, o); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(f.dir, repo.TimestampPath))
		if err != nil {
			return nil, err
		}
		if v == 1 {
			f.oldIndex = b
		} else {
			f.index = b
		}
	}
	_, _, files, err := repo.OpenDir(context.Background(), f.dir, repo.Trust{Legacy: f.keys}, repo.Expect{})
	if err != nil {
		return nil, err
	}
	f.meta = map[string][]byte{}
	for _, p := range files {
		if p == repo.TimestampPath || strings.HasSuffix(p, ".snapshot.json") || strings.HasSuffix(p, ".targets.json") {
			if f.meta[p], err = os.ReadFile(filepath.Join(f.dir, p)); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

// set returns a fresh copy of the current metadata, to edit and re-sign.
func (f *fixture) set(t testing.TB) *tuftest.Set {
	t.Helper()
	var ts, snap, targets []byte
	for p, b := range f.meta {
		switch {
		case p == repo.TimestampPath:
			ts = b
		case strings.HasSuffix(p, ".snapshot.json"):
			snap = b
		default:
			targets = b
		}
	}
	return tuftest.FromBytes(t, ts, snap, targets, nil)
}

// serials hands out index serials above anything published, so that each
// crafted or re-signed index is newer than the one a root has seen.
var serials atomic.Uint64

func init() { serials.Store(100) }

// parsedIndex returns a fresh copy of the real index (versions 1 and 2):
// Serial and Expires are the timestamp's.
func (f *fixture) parsedIndex(t testing.TB) *repo.Index {
	t.Helper()
	set := f.set(t)
	x := set.Index(t)
	x.Serial, x.Expires = uint64(set.Timestamp.Signed.Version), set.Timestamp.Signed.Expires
	return x
}

// server serves the shared repository with per-path overrides: a file in
// its overlay directory wins over the repository's, and a handler in hooks
// wins over both. It counts the body bytes it sends.
type server struct {
	base, overlay string
	URL           string
	sent          atomic.Int64
	mu            sync.Mutex
	hooks         map[string]http.HandlerFunc
	rate          int // bytes per second per response; 0 = unpaced
}

func newServer(t testing.TB, base string) *server {
	t.Helper()
	s := &server{base: base, overlay: t.TempDir(), hooks: map[string]http.HandlerFunc{}}
	s.URL = testrepo.Serve(t, s)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path[1:]
	s.mu.Lock()
	h, rate := s.hooks[p], s.rate
	s.mu.Unlock()
	if rate > 0 {
		w = &pacedWriter{ResponseWriter: w, rate: rate}
	}
	cw := &countingWriter{ResponseWriter: w, n: &s.sent}
	if h != nil {
		h(cw, r)
		return
	}
	dir := s.base
	if _, err := os.Stat(filepath.Join(s.overlay, filepath.FromSlash(p))); err == nil {
		dir = s.overlay
	}
	http.FileServer(http.Dir(dir)).ServeHTTP(cw, r)
}

// hook makes path answer with h (nil removes the hook).
func (s *server) hook(path string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.hooks, path)
	} else {
		s.hooks[path] = h
	}
}

// put writes b at path in the overlay.
func (s *server) put(t testing.TB, path string, b []byte) {
	t.Helper()
	p := filepath.Join(s.overlay, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0644); err != nil {
		t.Fatal(err)
	}
}

// reset drops every override.
func (s *server) reset(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	clear(s.hooks)
	s.mu.Unlock()
	if err := os.RemoveAll(s.overlay); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(s.overlay, 0755)
}

// putDoc stores b as a compressed object in the overlay and returns its pin.
func (s *server) putDoc(t testing.TB, b []byte) repo.BlobRef {
	t.Helper()
	var z bytes.Buffer
	if err := delta.Compress(bytes.NewReader(b), &z); err != nil {
		t.Fatal(err)
	}
	d := digest.Of(b)
	s.put(t, repo.ObjectPath(d), z.Bytes())
	return repo.BlobRef{SHA256: d, Size: int64(len(b)), Stored: digest.Of(z.Bytes()), StoredSize: int64(z.Len())}
}

// sign publishes x as targets, snapshot and timestamp signed by keys, all
// with a fresh version, valid until x.Expires, and returns the timestamp.
func (s *server) sign(t testing.TB, x *repo.Index, keys ...repo.PrivateKey) []byte {
	t.Helper()
	set := fix.set(t)
	set.SetIndex(t, x)
	v := int64(serials.Add(1))
	set.Targets.Signed.Version, set.Snapshot.Signed.Version, set.Timestamp.Signed.Version = v-1, v-1, v-1
	files := set.Files(t, tuftest.Keys{Targets: keys, Snapshot: keys, Timestamp: keys}, time.Until(x.Expires))
	for p, b := range files {
		s.put(t, p, b)
	}
	return files[repo.TimestampPath]
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// world is one machine under attack: a root provisioned at a version from a
// server the test controls, and a canary directory next to the root that no
// upgrade may touch.
type world struct {
	t      *testing.T
	fix    *fixture
	srv    *server
	dir    string // holds root/ and canary/
	root   string
	cfg    *engine.Config
	before map[string]node // everything outside the inactive slot and the daemon state
	// provisionBytes is what the server sent to provision the root: a
	// download from scratch.
	provisionBytes int64
}

// newWorld provisions a root at version v and records its state.
func newWorld(t *testing.T, v uint64) *world {
	t.Helper()
	return newWorldIn(t, t.TempDir(), v)
}

// newWorldIn is newWorld in dir (e.g. a small tmpfs).
func newWorldIn(t *testing.T, dir string, v uint64) *world {
	t.Helper()
	f := shared(t)
	w := &world{t: t, fix: f, srv: newServer(t, f.dir), dir: dir}
	w.root = filepath.Join(w.dir, "root")
	canary := filepath.Join(w.dir, "canary")
	if err := os.MkdirAll(canary, 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(canary, "keep"), []byte("canary\n"), 0644); err != nil {
		t.Fatal(err)
	}
	w.cfg = w.config()
	if _, err := engine.Provision(context.Background(), w.cfg, layout.Version(v)); err != nil {
		t.Fatal(err)
	}
	w.provisionBytes = w.srv.sent.Load()
	w.before = w.outside()
	return w
}

// config is an engine config with short network timeouts, so that slow
// retrieval attacks end in seconds.
func (w *world) config(mirrors ...string) *engine.Config {
	lr, err := layout.New(w.root)
	if err != nil {
		w.t.Fatal(err)
	}
	if len(mirrors) == 0 {
		mirrors = []string{w.srv.URL}
	}
	return &engine.Config{
		Root: lr, Mirrors: mirrors, Channel: testrepo.Channel, Keys: w.fix.keys, Logf: w.t.Logf,
		Fetch: fetch.Options{StallTimeout: time.Second, Retries: 1, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond},
	}
}

// outside snapshots everything an attack must not change: the whole
// directory holding the root and the canary, except the inactive slot
// (which an upgrade may write) and the daemon's state directory.
func (w *world) outside() map[string]node {
	w.t.Helper()
	lr := w.cfg.Root
	active, err := lr.CurrentSlot()
	if err != nil {
		w.t.Fatal(err)
	}
	skip := map[string]bool{lr.Slot(active.Other()): true, lr.StateDir(): true}
	return snapshot(w.t, w.dir, skip)
}

// checkUntouchedActive is checkUntouched for runs that may legitimately
// swing the boot pointer (the security service's directory is left out).
func (w *world) checkUntouchedActive() {
	w.t.Helper()
	skip := w.cfg.Root.SecurityDir()
	now := w.outside()
	before := map[string]node{}
	for k, v := range w.before {
		before[k] = v
	}
	for _, m := range []map[string]node{before, now} {
		for k := range m {
			if p := filepath.Join(w.dir, k); p == skip || strings.HasPrefix(p, skip+"/") {
				delete(m, k)
			}
		}
	}
	if diff := cmpNodes(before, now); diff != "" {
		w.t.Fatalf("the active slot or the canary changed (-before +after):\n%s", diff)
	}
}

// checkUntouched asserts the invariants after an attack.
func (w *world) checkUntouched() {
	w.t.Helper()
	if diff := cmpNodes(w.before, w.outside()); diff != "" {
		w.t.Errorf("the attack changed something outside the inactive slot (-before +after):\n%s", diff)
	}
}

// goodAttempt serves the real repository again under a fresh serial and
// checks that an upgrade to version 2 now succeeds (or is up to date when
// the root already runs it).
func (w *world) goodAttempt() {
	w.t.Helper()
	w.srv.reset(w.t)
	w.srv.sign(w.t, w.fix.parsedIndex(w.t), w.fix.key)
	cfg := w.config()
	res, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	cur, _ := cfg.Root.CurrentSlot()
	inst, _ := engine.LoadInstalled(cfg.Root, cur)
	if inst != nil && inst.Version == 2 {
		if err == nil || !isUpToDate(err) {
			w.t.Fatalf("good attempt on a root at version 2: %v, want up to date", err)
		}
		return
	}
	if err != nil {
		w.t.Fatalf("good attempt after the attack: %v", err)
	}
	if res.Version != 2 {
		w.t.Fatalf("good attempt installed version %d", res.Version)
	}
}

// node is what must not change about a path.
type node = testtree.Node

func snapshot(t testing.TB, dir string, skip map[string]bool) map[string]node {
	return testtree.Snapshot(t, dir, skip)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
