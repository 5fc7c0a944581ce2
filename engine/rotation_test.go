package engine_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// TestRootRotation: a laptop walks the repository's root chain over HTTP
// and keeps each root in its persistent state; from then on the revoked
// key is refused, from any mirror, even when the slot ships the old root.
func TestRootRotation(t *testing.T) {
	rp := testrepo.New(t, 1)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	_, other := rp.Provision(t, url, 1) // a laptop that never sees root 2

	// A mirror that keeps the old key: it publishes version 2 with it.
	stale := filepath.Join(t.TempDir(), "stale")
	if out, err := exec.Command("cp", "-a", rp.Dir, stale).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	staleURL := testrepo.Serve(t, http.FileServer(http.Dir(stale)))
	tree2 := filepath.Join(t.TempDir(), "tree2")
	if out, err := exec.Command("cp", "-a", rp.Trees[0], tree2).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(tree2, "etc", "os-release"), []byte("VERSION_ID=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Add(context.Background(), tree2, publish.Options{Repo: stale, Key: rp.Key, Channel: testrepo.Channel}); err != nil {
		t.Fatal(err)
	}

	// The real repository rotates every role to a new key and publishes
	// version 2 with it.
	k2, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	testrepo.RotateAll(t, rp.Dir, rp.Key, k2)
	if _, err := publish.Add(context.Background(), tree2, publish.Options{Repo: rp.Dir, Key: k2, Channel: testrepo.Channel}); err != nil {
		t.Fatal(err)
	}

	rm, err := engine.OpenRemote(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Index.Latest().Version != 2 {
		t.Fatalf("newest version %d, want 2", rm.Index.Latest().Version)
	}
	chain, err := engine.LoadRoots(cfg.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 {
		t.Fatalf("persistent chain of %d roots, want 2", len(chain))
	}
	root1, err := os.ReadFile(filepath.Join(rp.Dir, repo.RootPathOf(1)))
	if err != nil {
		t.Fatal(err)
	}

	// The control: to a laptop still at root 1 the stale mirror is good.
	other.Mirrors = []string{staleURL}
	if rm, err := engine.OpenRemote(context.Background(), other, nil); err != nil || rm.Index.Latest().Version != 2 {
		t.Fatalf("a laptop at root 1, the stale mirror: %v", err)
	}

	for _, tc := range []struct {
		name    string
		shipped []byte // the slot's etc/upgrade/root.json
	}{
		{"no root shipped", nil},
		{"the slot ships root 1", root1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *cfg
			c.Mirrors, c.TrustedRoot = []string{staleURL}, tc.shipped
			_, err := engine.OpenRemote(context.Background(), &c, nil)
			if !errors.Is(err, errdefs.ErrBadSignature) || !strings.Contains(err.Error(), "timestamp failed, not enough signatures") {
				t.Fatalf("the revoked key's metadata: got %v, want ErrBadSignature for the timestamp", err)
			}
		})
	}
}
