package engine_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
)

// A version that adds executables and a library (a Debian update's typical
// new content), published with Best: xz packs (the x86 filter) must be
// offered, chosen over the zstd objects they undercut, decoded, and the
// slot must come out exactly the new tree.
func TestXZPacks(t *testing.T) {
	v1 := map[string][]byte{}
	for i := 0; i < 20; i++ {
		v1["usr/share/doc/f"+string(rune('a'+i))] = []byte(string(rune('a'+i)) + " unchanged documentation\n")
	}
	v2 := map[string][]byte{}
	for p, b := range v1 {
		v2[p] = b
	}
	// Host executables: real x86 code, the filter's input. libc is over
	// the pack item limit: it comes alone, as xz or as its object.
	for _, exe := range []string{"/usr/bin/ls", "/usr/bin/cp", "/usr/bin/mv", "/usr/bin/tar", "/usr/bin/sed", "/usr/bin/grep", "/lib/x86_64-linux-gnu/libc.so.6"} {
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		v2["usr/lib/new"+filepath.Base(exe)] = b
	}
	rp := publishVersions(t, true, v1, v2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	ctx := context.Background()

	rm, _, target := openNewest(t, ctx, cfg)
	xzPacks := 0
	for _, p := range target.Delivery.Packs {
		if p.Codec == repo.CodecXZ {
			xzPacks++
		}
	}
	if xzPacks < 2 {
		t.Fatalf("delivery offers %d xz packs of %d; want the executables' pack and libc's", xzPacks, len(target.Delivery.Packs))
	}
	// What the new files would cost as objects: the xz packs must undercut it.
	var objects int64
	for _, o := range target.Delivery.Objects {
		objects += o.StoredSize
	}
	// A codec this client does not know: its packs are skipped, their
	// items come as objects.
	cur, err := engine.LoadInstalled(cfg.Root, layout.SlotA)
	if err != nil {
		t.Fatal(err)
	}
	for i := range target.Delivery.Packs {
		target.Delivery.Packs[i].Codec = "brotli"
	}
	plan, err := rm.Plan(ctx, cur.Manifest, nil, target)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Packs != 0 {
		t.Errorf("plan fetches %d packs of an unknown codec", plan.Packs)
	}

	res, err := engine.Upgrade(ctx, cfg, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched >= objects {
		t.Errorf("fetched %d bytes; the new objects alone are %d", res.Fetched, objects)
	}
	t.Logf("fetched %d bytes; objects would be %d", res.Fetched, objects)
	checkSlotB(t, ctx, cfg, rp.Trees[1])
}
