package engine

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

func TestMakePlan(t *testing.T) {
	d := func(s string) digest.Digest { return digest.Of([]byte(s)) }
	f := func(p, content string, mode uint32) manifest.Entry {
		return manifest.Entry{Path: p, Type: manifest.File, Mode: mode, Size: int64(len(content)), SHA256: d(content)}
	}
	active := &manifest.Manifest{Entries: []manifest.Entry{
		{Path: "bin", Type: manifest.Dir, Mode: 0755},
		f("bin/drifted", "drift-old", 0755),
		f("bin/same", "same", 0755),
		f("bin/su", "su", 0755),
		f("bin/tool", "tool-v1", 0755),
		f("old-name", "moved", 0644),
	}}
	target := &Target{
		Manifest: &manifest.Manifest{Entries: []manifest.Entry{
			{Path: "bin", Type: manifest.Dir, Mode: 0755},
			f("bin/drifted", "drift-old", 0755),
			f("bin/dup", "same", 0755),
			f("bin/new", "brand new", 0644),
			f("bin/same", "same", 0755),
			f("bin/su", "su", 04755),
			f("bin/tool", "tool-v2", 0755),
			{Path: "lib", Type: manifest.Symlink, Mode: 0777, Target: "usr/lib"},
			f("new-name", "moved", 0644),
			f("new-name2", "moved", 0644),
		}},
		Delivery: &repo.Delivery{},
	}
	obj := func(s string) repo.BlobRef {
		return repo.BlobRef{SHA256: d(s), Size: int64(len(s)), Stored: d("z" + s), StoredSize: 100}
	}
	target.Delivery.Objects = []repo.BlobRef{obj("brand new"), obj("drift-old"), obj("tool-v2")}
	target.Delivery.Deltas = []repo.DeltaRef{
		{From: d("tool-v1"), To: d("tool-v2"), SHA256: d("patch"), Size: 10},
		{From: d("not-local"), To: d("brand new"), SHA256: d("patch2"), Size: 5},
	}
	target.Delivery.Sort()

	p, err := MakePlan(active, map[string]bool{"bin/drifted": true}, target)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range p.Actions {
		got[a.Entry.Path] = a.Src.String() + " " + a.From
	}
	want := map[string]string{
		"bin/drifted": "object ",        // drifted: never trusted, fetched again
		"bin/dup":     "copy bin/same",  // content of a kept inode: a link would share it undeclared
		"bin/new":     "object ",        // the only delta needs a base we lack
		"bin/same":    "keep ",          // the clone's inode is right
		"bin/su":      "copy bin/su",    // mode-only change: new inode from local content
		"bin/tool":    "delta bin/tool", // local base, delta published
		"new-name":    "link old-name",  // moved: hard link, no download
		"new-name2":   "copy old-name",  // a second copy of moved content gets its own inode
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	if p.DownloadBytes != 100+100+10 || len(p.Blobs) != 3 {
		t.Errorf("download %d bytes in %d blobs, want 210 in 3", p.DownloadBytes, len(p.Blobs))
	}
	if p.NewInodes != 2+6 { // bin dir + lib symlink, plus three copies, delta, two objects
		t.Errorf("new inodes %d", p.NewInodes)
	}
}

func TestMakePlanMissingObject(t *testing.T) {
	target := &Target{
		Manifest: &manifest.Manifest{Entries: []manifest.Entry{{Path: "x", Type: manifest.File, Size: 1, SHA256: digest.Of([]byte("x"))}}},
		Delivery: &repo.Delivery{},
	}
	if _, err := MakePlan(nil, nil, target); err == nil {
		t.Fatal("a content without an object must be an error")
	}
}

// A second base counts only when its producer is decided first (larger
// files first): chains get levels, and a delivery list cannot make a cycle.
func TestSecondBases(t *testing.T) {
	d := func(s string) digest.Digest { return digest.Of([]byte(s)) }
	f := func(p, content string, size int64) manifest.Entry {
		return manifest.Entry{Path: p, Type: manifest.File, Mode: 0755, Size: size, SHA256: d(content)}
	}
	active := &manifest.Manifest{Entries: []manifest.Entry{
		f("big", "big-v1", 300), f("mid", "mid-v1", 200), f("small", "small-v1", 100), f("lib", "lib", 50),
	}}
	target := &Target{
		Manifest: &manifest.Manifest{Entries: []manifest.Entry{
			f("big", "big-v2", 300), f("mid", "mid-v2", 200), f("small", "small-v2", 100),
			f("tiny", "tiny-v2", 10),
		}},
		Delivery: &repo.Delivery{},
	}
	obj := func(s string) repo.BlobRef {
		return repo.BlobRef{SHA256: d(s), Size: 1, Stored: d("z" + s), StoredSize: 1000}
	}
	target.Delivery.Objects = []repo.BlobRef{obj("big-v2"), obj("mid-v2"), obj("small-v2"), obj("tiny-v2")}
	target.Delivery.Deltas = []repo.DeltaRef{
		{From: d("big-v1"), To: d("big-v2"), SHA256: d("p1"), Size: 500},
		{From: d("big-v1"), To: d("big-v2"), With: d("small-v2"), SHA256: d("p1s"), Size: 10}, // cycle bait: small comes later
		{From: d("mid-v1"), To: d("mid-v2"), With: d("big-v2"), SHA256: d("p2"), Size: 100},
		{From: d("small-v1"), To: d("small-v2"), With: d("mid-v2"), SHA256: d("p3"), Size: 50},
		{From: d("lib"), To: d("tiny-v2"), With: d("lib"), SHA256: d("p4"), Size: 5}, // local second base
	}
	target.Delivery.Sort()
	p, err := MakePlan(active, nil, target)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range p.Actions {
		got[a.Entry.Path] = fmt.Sprintf("%s with=%q inB=%v level=%d", a.Src, a.With, a.WithInB, a.Level)
	}
	want := map[string]string{
		"big":   `delta with="" inB=false level=0`,
		"mid":   `delta with="big" inB=true level=1`,
		"small": `delta with="mid" inB=true level=2`,
		"tiny":  `delta with="lib" inB=false level=0`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	if p.Levels != 3 {
		t.Errorf("levels %d, want 3", p.Levels)
	}
}

// A pack is fetched only when it costs less than the items this client
// needs from it one by one (plus a request each).
func TestChoosePacks(t *testing.T) {
	d := func(s string) digest.Digest { return digest.Of([]byte(s)) }
	f := func(p, content string) manifest.Entry {
		return manifest.Entry{Path: p, Type: manifest.File, Mode: 0644, Size: 10, SHA256: d(content)}
	}
	target := &Target{
		Manifest: &manifest.Manifest{Entries: []manifest.Entry{f("a", "a"), f("b", "b"), f("c", "c"), f("e", "e")}},
		Delivery: &repo.Delivery{},
	}
	obj := func(s string, stored int64) repo.BlobRef {
		return repo.BlobRef{SHA256: d(s), Size: 10, Stored: d("z" + s), StoredSize: stored}
	}
	target.Delivery.Objects = []repo.BlobRef{obj("a", 300), obj("b", 300), obj("c", 300), obj("e", 300)}
	item := func(s string) repo.PackItem { return repo.PackItem{SHA256: d(s), Size: 10} }
	target.Delivery.Packs = []repo.Pack{
		{SHA256: d("cheap"), Size: 900, Items: []repo.PackItem{item("a"), item("b"), item("x")}},   // 900 <= 2*(300+400)
		{SHA256: d("costly"), Size: 5000, Items: []repo.PackItem{item("c"), item("y"), item("z")}}, // 5000 > 700
	}
	target.Delivery.Sort()
	p, err := MakePlan(nil, nil, target)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, a := range p.Actions {
		got[a.Entry.Path] = a.Pack
	}
	if diff := cmp.Diff(map[string]int{"a": 0, "b": 0, "c": -1, "e": -1}, got); diff != "" {
		t.Fatalf("pack per file (-want +got)\n%s", diff)
	}
	if p.Packs != 1 || len(p.Blobs) != 3 || p.DownloadBytes != 900+300+300 {
		t.Errorf("%d packs, %d blobs, %d bytes; want 1 pack + 2 objects = 1500 bytes", p.Packs, len(p.Blobs), p.DownloadBytes)
	}
}
