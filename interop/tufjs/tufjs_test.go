//go:build tufjs

// Package tufjs is the peer test of issue 16: a repository published by
// upgrade-publish must be accepted by another TUF implementation, tuf-js,
// and the attacks must be refused by it too. It needs node and tuf-js
// installed beside it (`make test-tufjs` runs npm ci first).
package tufjs

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// peer runs tuf-js over the repository at url with the trusted metadata
// in dir, downloading target; it returns the target's custom version.
func peer(t *testing.T, dir, url, target string) (uint64, []byte, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "target")
	cmd := exec.Command("node", "peer.js", dir, url, target, out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, nil, &peerError{err: err, stderr: stderr.String()}
	}
	var c repo.Custom
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		t.Fatalf("tuf-js printed %q: %v", stdout.String(), err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(c.Version), b, nil
}

type peerError struct {
	err    error
	stderr string
}

func (e *peerError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

func buildTree(t *testing.T, v int) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	if err := testtree.Build(tree, v); err != nil {
		t.Fatal(err)
	}
	return tree
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	return dst
}

// TestTufJS: tuf-js accepts a repository published by upgrade-publish,
// across a timestamp refresh and a root rotation, downloads a version's
// manifest by its target path, and refuses a rollback, tampered targets
// and metadata signed by a revoked key.
func TestTufJS(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("needs node (scripts/deps.d/tufjs.txt)")
	}
	if _, err := os.Stat("node_modules/tuf-js"); err != nil {
		t.Fatal("needs tuf-js: run `make test-tufjs` (npm ci in interop/tufjs)")
	}
	k1, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	o := publish.Options{Repo: dir, Key: k1, Channel: "stable"}
	if _, err := publish.Add(context.Background(), buildTree(t, 1), o); err != nil {
		t.Fatal(err)
	}
	url := testrepo.Serve(t, http.FileServer(http.Dir(dir)))
	trust := t.TempDir()
	root1, err := os.ReadFile(filepath.Join(dir, repo.RootPathOf(1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(trust, "root.json"), root1, 0644); err != nil {
		t.Fatal(err)
	}

	// Version 1, its manifest byte for byte as the repository stores it.
	v, b, err := peer(t, trust, url, repo.TargetName(1, repo.KindManifest))
	if err != nil {
		t.Fatal(err)
	}
	_, x, err := publish.LoadIndex(o)
	if err != nil {
		t.Fatal(err)
	}
	if v != 1 || digest.Of(b) != x.Versions[0].Manifest.Stored {
		t.Fatalf("tuf-js got version %d, %d bytes; want version 1's stored manifest", v, len(b))
	}

	// A timestamp refresh.
	if err := publish.Resign(o); err != nil {
		t.Fatal(err)
	}
	if _, _, err := peer(t, trust, url, repo.TargetName(1, repo.KindManifest)); err != nil {
		t.Fatalf("after resign: %v", err)
	}

	// A mirror that keeps the old key publishes its own version 2.
	stale := copyDir(t, dir)
	if _, err := publish.Add(context.Background(), buildTree(t, 2), publish.Options{Repo: stale, Key: k1, Channel: "stable"}); err != nil {
		t.Fatal(err)
	}
	staleURL := testrepo.Serve(t, http.FileServer(http.Dir(stale)))

	// Root 2 moves every role to k2; version 2 is published with it.
	k2, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	testrepo.RotateAll(t, dir, k1, k2)
	if _, err := publish.Add(context.Background(), buildTree(t, 2), publish.Options{Repo: dir, Key: k2, Channel: "stable"}); err != nil {
		t.Fatal(err)
	}
	if v, _, err := peer(t, trust, url, repo.TargetName(2, repo.KindDelivery)); err != nil || v != 2 {
		t.Fatalf("after the rotation: version %d, %v", v, err)
	}
	// One more refresh, so that the timestamp before it is a rollback.
	oldTimestamp, err := os.ReadFile(filepath.Join(dir, repo.TimestampPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := publish.Resign(publish.Options{Repo: dir, Key: k2, Channel: "stable"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := peer(t, trust, url, repo.TargetName(2, repo.KindManifest)); err != nil {
		t.Fatalf("after the second resign: %v", err)
	}

	// The attacks, each from a copy of what tuf-js now trusts.
	tampered := copyDir(t, dir)
	tm, err := publish.LoadMeta(tampered)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(tampered, repo.MetaPathOf("targets", tm.Targets.Signed.Version))
	tb, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Same length, another channel: only the hash and signature tell.
	forged := bytes.Replace(tb, []byte(`"stable"`), []byte(`"stabme"`), 1)
	if bytes.Equal(forged, tb) {
		t.Fatal("no channel to tamper with in the targets")
	}
	if err := os.WriteFile(p, forged, 0644); err != nil {
		t.Fatal(err)
	}
	replay := copyDir(t, dir)
	if err := os.WriteFile(filepath.Join(replay, repo.TimestampPath), oldTimestamp, 0644); err != nil {
		t.Fatal(err)
	}
	// A client that starts from root 1 only (it caches no targets).
	fresh := t.TempDir()
	if err := os.WriteFile(filepath.Join(fresh, "root.json"), root1, 0644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, trust, url, msg string
	}{
		{"revoked key", trust, staleURL, "timestamp was signed by 0/1 keys"},
		{"rollback of the timestamp", trust, testrepo.Serve(t, http.FileServer(http.Dir(replay))), "version"},
		{"tampered targets", fresh, testrepo.Serve(t, http.FileServer(http.Dir(tampered))), "hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := peer(t, copyDir(t, tc.trust), tc.url, repo.TargetName(2, repo.KindManifest))
			if err == nil {
				t.Fatal("tuf-js accepted it")
			}
			if !strings.Contains(strings.ToLower(err.Error()), tc.msg) {
				t.Fatalf("tuf-js refused for another reason: %v", err)
			}
			t.Logf("refused: %v", err)
		})
	}
}
