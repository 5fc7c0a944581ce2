package engine_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
)

// TestStaleMirrorFirst: the first mirror is a stale copy of the repository
// (a valid index of an older serial, version 1 only), the second serves
// the current one. Both are real HTTP servers on [::1]. The client must
// take the highest valid serial among the mirrors that answer, not the
// first valid one, or one stale mirror freezes the machine.
func TestStaleMirrorFirst(t *testing.T) {
	rp := testrepo.New(t, 1)
	stale := filepath.Join(t.TempDir(), "stale")
	os.Chmod(filepath.Dir(stale), 0o755)
	if out, err := exec.Command("cp", "-a", rp.Dir, stale).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	staleURL := testrepo.Serve(t, http.FileServer(http.Dir(stale)))
	freshURL := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, staleURL, 1)
	tree2 := filepath.Join(t.TempDir(), "tree2")
	if out, err := exec.Command("cp", "-a", rp.Trees[0], tree2).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(tree2, "etc", "os-release"), []byte("VERSION_ID=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rp.Publish(t, tree2)

	cfg.Mirrors = []string{staleURL, freshURL}
	rm, err := engine.OpenRemote(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Mirror != freshURL || rm.Index.Latest().Version != 2 {
		t.Fatalf("index from %s with newest version %d; want %s with version 2", rm.Mirror, rm.Index.Latest().Version, freshURL)
	}
	res, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if err != nil || res.Version != 2 {
		t.Fatalf("Upgrade = %+v, %v; want version 2", res, err)
	}
}
