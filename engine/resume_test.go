package engine_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
)

// countingHandler serves dir, counting bytes and optionally slowing down.
type countingHandler struct {
	h     http.Handler
	bytes atomic.Int64
	delay atomic.Int64 // nanoseconds per 32 KiB written
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.h.ServeHTTP(&countingWriter{ResponseWriter: w, c: c}, r)
}

type countingWriter struct {
	http.ResponseWriter
	c *countingHandler
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 32<<10)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		w.c.bytes.Add(int64(m))
		if err != nil {
			return n, err
		}
		if d := time.Duration(w.c.delay.Load()); d > 0 {
			if f, ok := w.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(d)
		}
		p = p[k:]
	}
	return n, nil
}

// withBigFile publishes a v3 = v2 plus an incompressible 6 MiB file.
func withBigFile(t *testing.T, rp *testrepo.Repo) {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree3")
	if out, err := exec.Command("cp", "-a", rp.Trees[1], tree).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	big := make([]byte, 6<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(tree, "usr/lib/big.bin"), big, 0644); err != nil {
		t.Fatal(err)
	}
	rp.Publish(t, tree)
}

func TestCancelThenResume(t *testing.T) {
	rp := testrepo.New(t, 2)
	withBigFile(t, rp)
	srv := &countingHandler{h: http.FileServer(http.Dir(rp.Dir))}
	srv.delay.Store(int64(20 * time.Millisecond))
	url := testrepo.Serve(t, srv)
	_, cfg := rp.Provision(t, url, 2)

	ctx, cancel := context.WithCancel(context.Background())
	var once atomic.Bool
	_, err := engine.Upgrade(ctx, cfg, engine.Options{Progress: func(p engine.Progress) {
		if p.Phase == engine.PhaseDownloading && p.BytesDone > 2<<20 && once.CompareAndSwap(false, true) {
			cancel()
		}
	}})
	if err == nil || !errors.Is(err, context.Canceled) && !errors.Is(err, errdefs.ErrCancelled) {
		t.Fatalf("cancelled upgrade: %v", err)
	}
	if _, err := engine.LoadInstalled(cfg.Root, layout.SlotB); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a cancelled slot must not be recorded as installed: %v", err)
	}
	first := srv.bytes.Load()
	srv.delay.Store(0)
	srv.bytes.Store(0)
	res, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed {
		t.Error("second run did not resume the job")
	}
	second := srv.bytes.Load()
	t.Logf("served %d bytes before the cancel, %d after (object is ~6 MiB)", first, second)
	if second >= 6<<20 || first < 2<<20 {
		t.Fatalf("resume refetched: %d bytes after the cancel", second)
	}
}

func TestCorruptObjectFromAnotherMirror(t *testing.T) {
	rp := testrepo.New(t, 2)
	// Mirror 1 is a copy of the repository with every object corrupted.
	bad := filepath.Join(t.TempDir(), "bad")
	if out, err := exec.Command("cp", "-a", rp.Dir, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	n := 0
	filepath.Walk(filepath.Join(bad, "objects"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasSuffix(p, ".tmp") {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0644)
			n++
		}
		return nil
	})
	good := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	evil := testrepo.Serve(t, http.FileServer(http.Dir(bad)))
	_, cfg := rp.Provision(t, good, 1)
	cfg.Mirrors = []string{evil, good}
	res, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if err != nil {
		t.Fatalf("upgrade with a corrupting first mirror: %v", err)
	}
	if res.Version != 2 {
		t.Fatalf("version %d", res.Version)
	}
	t.Logf("corrupted %d objects on mirror 1; upgrade fetched %d bytes", n, res.Fetched)
}
