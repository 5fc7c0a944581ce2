package main

import (
	"context"
	"log"
	"path/filepath"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

type verifyResult struct {
	Bytes             int64
	OursSeconds       []float64
	ShaSeconds        []float64
	OursMBps, ShaMBps float64
}

// benchVerify times verify.Slot (both cores) on the slot the last upgrade
// built, against `find -type f | xargs -P2 sha256sum` on the same tree, both
// with a warm page cache (one untimed pass of each first).
func benchVerify(ctx context.Context, o *ours, runs int) *verifyResult {
	lr, err := layout.New(o.root)
	check(err)
	inst, err := engine.LoadInstalled(lr, layout.SlotB)
	check(err)
	dir := filepath.Join(o.root, "b")
	root, err := slotfs.Open(dir)
	check(err)
	defer root.Close()
	r := &verifyResult{}
	for i := range inst.Manifest.Entries {
		e := &inst.Manifest.Entries[i]
		if e.Type == manifest.File && e.Link == "" {
			r.Bytes += e.Size
		}
	}
	sha := func() measured {
		return timed(nil, "sh", "-c", `find "$1" -type f -print0 | xargs -0 -P2 -n 64 sha256sum >/dev/null`, "sh", dir)
	}
	ours := func() float64 {
		t0 := time.Now()
		check(verify.Slot(ctx, root, inst.Manifest, verify.Options{Workers: 2}))
		return time.Since(t0).Seconds()
	}
	sha()
	ours()
	for i := 0; i < runs; i++ {
		r.OursSeconds = append(r.OursSeconds, ours())
		r.ShaSeconds = append(r.ShaSeconds, sha().Seconds)
	}
	r.OursMBps = float64(r.Bytes) / 1e6 / median(r.OursSeconds)
	r.ShaMBps = float64(r.Bytes) / 1e6 / median(r.ShaSeconds)
	log.Printf("verify: %.0f MB/s, sha256sum -P2: %.0f MB/s (%s MB)", r.OursMBps, r.ShaMBps, mb(r.Bytes))
	return r
}

// checkActive verifies that slot a still matches its recorded manifest:
// no contender may have written into the tree the others start from.
func checkActive(ctx context.Context, o *ours) {
	lr, err := layout.New(o.root)
	check(err)
	inst, err := engine.LoadInstalled(lr, layout.SlotA)
	check(err)
	root, err := slotfs.Open(filepath.Join(o.root, "a"))
	check(err)
	defer root.Close()
	if err := verify.Slot(ctx, root, inst.Manifest, verify.Options{}); err != nil {
		log.Printf("warning: the starting tree was modified during the runs: %v", err)
	} else {
		log.Printf("slot a still matches its manifest")
	}
}

// scan reads a tree's manifest (to check what the peers built).
func scan(dir string) *manifest.Manifest {
	m, err := manifest.Scan(context.Background(), dir)
	check(err)
	return m
}

func countFiles(m *manifest.Manifest) int {
	n := 0
	for i := range m.Entries {
		if m.Entries[i].Type == manifest.File {
			n++
		}
	}
	return n
}

// compare logs how a peer's result differs from the new tree (type, mode,
// owner, content, target, xattrs); mtimes are not compared.
func compare(name string, want *manifest.Manifest, dir string) {
	got := scan(dir)
	bad := 0
	for i := range want.Entries {
		w := &want.Entries[i]
		g := got.Find(w.Path)
		if g == nil || !g.SameInodeMeta(w) {
			if bad < 3 {
				log.Printf("warning: %s: %s differs from the new tree (%+v vs %+v)", name, w.Path, g, *w)
			}
			bad++
		}
	}
	if extra := len(got.Entries) - (len(want.Entries) - bad); bad > 0 || extra != 0 {
		log.Printf("warning: %s: %d entries differ, %d entries in all vs %d wanted", name, bad, len(got.Entries), len(want.Entries))
	} else {
		log.Printf("%s: result matches the new tree (%d entries)", name, len(want.Entries))
	}
}
