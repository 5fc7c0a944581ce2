package engine

import (
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
