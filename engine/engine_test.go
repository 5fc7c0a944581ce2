package engine_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
)

func snapshot(t *testing.T, dir string) map[string]testtree.Node {
	return testtree.Snapshot(t, dir, nil)
}

func TestUpgradeEndToEnd(t *testing.T) {
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	root, cfg := rp.Provision(t, url, 1)
	lr := cfg.Root

	before := snapshot(t, lr.Slot(layout.SlotA))
	res, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counts keep/link/copy/delta/object = %v, fetched %d of planned %d", res.Counts, res.Fetched, res.DownloadBytes)
	if diff := cmp.Diff(before, snapshot(t, lr.Slot(layout.SlotA))); diff != "" {
		t.Fatalf("active slot changed (-before +after):\n%s", diff)
	}
	if res.Slot != layout.SlotB || res.Version != 2 {
		t.Fatalf("got slot %s version %d", res.Slot, res.Version)
	}
	for src, min := range map[engine.Source]int{engine.Keep: 5, engine.Link: 1, engine.Copy: 3, engine.Delta: 2, engine.Object: 2} {
		if res.Counts[src] < min {
			t.Errorf("%s: %d actions, want at least %d", src, res.Counts[src], min)
		}
	}
	// The clone linked what v2 keeps and nothing it would replace or remove.
	if res.Clone.Linked != res.Counts[engine.Keep] || res.Clone.Removed != 0 {
		t.Errorf("clone linked %d files and removed %d; the plan keeps %d", res.Clone.Linked, res.Clone.Removed, res.Counts[engine.Keep])
	}
	// The slot equals the published v2 tree in every way the manifest tracks.
	want, err := manifest.Scan(context.Background(), rp.Trees[1])
	if err != nil {
		t.Fatal(err)
	}
	got, err := manifest.Scan(context.Background(), lr.Slot(layout.SlotB))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Entries, got.Entries); diff != "" {
		t.Fatalf("slot b differs from the v2 tree (-want +got):\n%s", diff)
	}
	// Mode-only and xattr-only changes made new inodes; unchanged files share.
	after := snapshot(t, lr.Slot(layout.SlotB))
	for _, p := range []string{"bin/su", "usr/bin/httpd", "usr/bin/owner"} {
		if after[p].Ino == before[p].Ino {
			t.Errorf("%s: metadata change reused the active slot's inode", p)
		}
	}
	if after["usr/bin/unchanged"].Ino != before["usr/bin/unchanged"].Ino {
		t.Errorf("unchanged file was copied, not linked")
	}
	if after["usr/share/new-name"].Ino != before["usr/share/old-name"].Ino {
		t.Errorf("moved file was not linked from its old name")
	}
	inst, err := engine.LoadInstalled(lr, layout.SlotB)
	if err != nil || inst.Version != 2 {
		t.Fatalf("slot b record: %v %v", inst, err)
	}
	if j, _ := engine.LoadJournal(lr); j != nil {
		t.Errorf("journal left behind: %+v", j)
	}
	// A second upgrade finds the slot ready and does nothing.
	res2, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if err != nil || !res2.AlreadyReady {
		t.Fatalf("second upgrade: %+v %v", res2, err)
	}
	_ = root
}

func TestUpToDateAndDowngrade(t *testing.T) {
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 2)
	_, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if !errors.Is(err, errdefs.ErrUpToDate) {
		t.Fatalf("got %v, want ErrUpToDate", err)
	}
	_, err = engine.Upgrade(context.Background(), cfg, engine.Options{Version: 1})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("downgrade: got %v", err)
	}
	res, upToDate, err := engine.Check(context.Background(), cfg, 0)
	if err != nil || !upToDate {
		t.Fatalf("check: %+v %v %v", res, upToDate, err)
	}
}

func TestCheckReportsCost(t *testing.T) {
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	res, upToDate, err := engine.Check(context.Background(), cfg, 0)
	if err != nil || upToDate {
		t.Fatal(err, upToDate)
	}
	if res.Version != 2 || res.DownloadBytes <= 0 || res.NeedBytes <= res.DownloadBytes || res.FreeBytes <= 0 {
		t.Fatalf("check result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(cfg.Root.Slot(layout.SlotB), "usr")); err == nil {
		t.Fatal("check wrote into the inactive slot")
	}
}

func TestRefusesSlotNamedByPointer(t *testing.T) {
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	// As if slot b had been activated earlier and the machine not rebooted.
	p := bootptr.Pointer{Next: layout.SlotB, Good: layout.SlotA, Trial: true, Tries: 3}
	if err := bootptr.Write(cfg.Root.BootPointer(), p); err != nil {
		t.Fatal(err)
	}
	_, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("got %v, want ErrFailedPrecondition", err)
	}
	if got, _ := bootptr.Read(cfg.Root.BootPointer()); got != p {
		t.Fatalf("pointer changed: %+v", got)
	}
}

// TestNewestOnly: a caller authorized for the newest version only (the
// daemon's default polkit action) cannot have another one installed, even
// when a stale check made it look like the newest.
func TestNewestOnly(t *testing.T) {
	rp := testrepo.New(t, 3)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	_, err := engine.Upgrade(context.Background(), cfg, engine.Options{Version: 2, NewestOnly: true})
	if !errors.Is(err, errdefs.ErrNotAuthorized) {
		t.Fatalf("version 2 of 3, newest only: got %v, want ErrNotAuthorized", err)
	}
	res, err := engine.Upgrade(context.Background(), cfg, engine.Options{Version: 3, NewestOnly: true})
	if err != nil || res.Version != 3 {
		t.Fatalf("version 3 of 3, newest only: %+v, %v", res, err)
	}
}
