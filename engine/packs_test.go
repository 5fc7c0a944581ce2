package engine_test

import (
	"context"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// writeTree writes files (path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// Two executables gain the same new code (as a release's tools gain the
// same new runtime): the smaller one's delta uses the larger one, placed
// first, as a second base. Many small new and changed files come in packs.
// The result must be exactly version 2, whatever path each file took.
func TestPacksAndSecondBases(t *testing.T) {
	shared := make([]byte, 400<<10) // new in v2, in both tools; incompressible
	rand.New(rand.NewSource(40)).Read(shared)
	tool1, tool2 := testtree.Blob(1500<<10, 41), testtree.Blob(1200<<10, 42)
	v1 := map[string][]byte{"usr/bin/tool1": tool1, "usr/bin/tool2": tool2}
	v2 := map[string][]byte{
		"usr/bin/tool1": cat(testtree.Edit(tool1, 43), shared),
		"usr/bin/tool2": cat(shared, testtree.Edit(tool2, 44)),
	}
	for i := 0; i < 40; i++ {
		name := "usr/share/doc/f" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		old := testtree.Blob(3000+i*50, int64(100+i))
		v1[name] = old
		v2[name] = testtree.Edit(old, int64(200+i)) // small changed files: packed deltas
		v2[name+".new"] = testtree.Blob(2000+i*30, int64(300+i))
	}
	rp := publishVersions(t, false, v1, v2)
	var mu sync.Mutex
	var requested []string
	fs := http.FileServer(http.Dir(rp.Dir))
	url := testrepo.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requested = append(requested, strings.TrimPrefix(r.URL.Path, "/"))
		mu.Unlock()
		fs.ServeHTTP(w, r)
	}))
	_, cfg := rp.Provision(t, url, 1)
	ctx := context.Background()

	rm, ref, target := openNewest(t, ctx, cfg)
	cur, err := engine.LoadInstalled(cfg.Root, layout.SlotA)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := rm.Plan(ctx, cur.Manifest, nil, target)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	packed := 0
	for _, a := range plan.Actions {
		if a.Pack >= 0 {
			packed++
		}
		if a.With != "" {
			got[a.Entry.Path] = a.Src.String() + " with " + a.With
		} else if a.Entry.Path == "usr/bin/tool1" || a.Entry.Path == "usr/bin/tool2" {
			got[a.Entry.Path] = a.Src.String()
		}
	}
	want := map[string]string{"usr/bin/tool1": "delta", "usr/bin/tool2": "delta with usr/bin/tool1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second bases (-want +got):\n%s", diff)
	}
	if plan.Levels != 2 || plan.Packs == 0 || packed < 80 {
		t.Errorf("plan: %d levels, %d packs delivering %d files; want 2 levels, packs delivering all 80 small files", plan.Levels, plan.Packs, packed)
	}

	mu.Lock()
	requested = nil
	mu.Unlock()
	res, err := engine.Upgrade(ctx, cfg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The manifest came as a delta from v1's, and the short object list
	// sufficed: neither the manifest nor the full object list was fetched.
	mu.Lock()
	for _, p := range requested {
		for what, ref := range map[string]repo.BlobRef{"manifest": ref.Manifest, "full object list": target.Delivery.AllObjects} {
			if !ref.SHA256.IsZero() && p == repo.ObjectPath(ref.SHA256) {
				t.Errorf("the upgrade fetched the %s (%s)", what, p)
			}
		}
	}
	mu.Unlock()
	t.Logf("fetched %d bytes; planned %d in %d blobs", res.Fetched, plan.DownloadBytes, len(plan.Blobs))
	checkSlotB(t, ctx, cfg, rp.Trees[1])
	if res.Fetched > int64(len(shared))*3/2 {
		t.Errorf("fetched %d bytes for %d bytes of new incompressible code: it came twice", res.Fetched, len(shared))
	}
}

// publishVersions publishes each file set (path -> content) as the next
// version of a new repository, with publish.Options.Best if best.
func publishVersions(t *testing.T, best bool, versions ...map[string][]byte) *testrepo.Repo {
	t.Helper()
	base := t.TempDir()
	os.Chmod(base, 0o755)
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rp := &testrepo.Repo{Dir: filepath.Join(base, "repo"), Key: k, Keys: repo.Keyring{k.ID: k.Public()}, Best: best}
	for i, files := range versions {
		tree := filepath.Join(base, "tree", string(rune('1'+i)))
		writeTree(t, tree, files)
		rp.Trees = append(rp.Trees, tree)
		rp.Publish(t, tree)
	}
	return rp
}

// openNewest opens cfg's repository and loads its newest version.
func openNewest(t *testing.T, ctx context.Context, cfg *engine.Config) (*engine.Remote, *repo.VersionRef, *engine.Target) {
	t.Helper()
	rm, err := engine.OpenRemote(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := rm.Pick(0)
	if err != nil {
		t.Fatal(err)
	}
	target, err := rm.LoadTarget(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	return rm, ref, target
}

// checkSlotB fails the test unless slot b holds exactly tree.
func checkSlotB(t *testing.T, ctx context.Context, cfg *engine.Config, tree string) {
	t.Helper()
	checkSlot(t, ctx, cfg, layout.SlotB, tree)
}

// checkSlot fails unless slot holds exactly tree (paths, modes, contents).
func checkSlot(t *testing.T, ctx context.Context, cfg *engine.Config, slot layout.Slot, tree string) {
	t.Helper()
	wantM, err := manifest.Scan(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	gotM, err := manifest.Scan(ctx, cfg.Root.Slot(slot))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantM.Entries, gotM.Entries); diff != "" {
		t.Fatalf("slot %s differs from %s (-want +got):\n%s", slot, tree, diff)
	}
}

// planFromA plans the upgrade from slot a's installed version to target.
func planFromA(t *testing.T, ctx context.Context, cfg *engine.Config, rm *engine.Remote, target *engine.Target) *engine.Plan {
	t.Helper()
	cur, err := engine.LoadInstalled(cfg.Root, layout.SlotA)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := rm.Plan(ctx, cur.Manifest, nil, target)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}
