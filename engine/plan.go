package engine

import (
	"fmt"
	"os"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// Source says where a file's content comes from.
type Source int

const (
	// Keep: the clone already holds the right inode (shared with the active slot).
	Keep Source = iota
	// Link: the content and metadata exist at another path of the active slot
	// (a moved or renamed file): hard-link it, no download.
	Link
	// Copy: the content exists locally but the metadata differs (mode, owner,
	// xattr): copy into a new inode, never chmod a shared one.
	Copy
	// Delta: patch a local base with a downloaded delta.
	Delta
	// Object: download the whole compressed object.
	Object
)

func (s Source) String() string {
	return [...]string{"keep", "link", "copy", "delta", "object"}[s]
}

// Action places one file (the first member of its hard-link group).
type Action struct {
	Entry  *manifest.Entry
	Src    Source
	From   string // active-slot path holding the content or the delta base
	Delta  *repo.DeltaRef
	Object *repo.BlobRef
}

// Plan is what an upgrade will do and cost.
type Plan struct {
	Actions       []Action
	Blobs         []fetch.Blob
	DownloadBytes int64 // sum of blob sizes
	NewBytes      int64 // content written into new inodes (rounded to blocks)
	NewInodes     int64
	Counts        [Object + 1]int
}

// MakePlan compares the target with the active slot's manifest (what the
// clone holds, minus drifted paths) and picks the cheapest source for each
// file: keep, link, copy, delta from a local base, or the whole object.
func MakePlan(active *manifest.Manifest, drift map[string]bool, t *Target) (*Plan, error) {
	// A Link must not make two paths of the new slot share an inode that the
	// target does not declare as a hard-link group (verify refuses that, and
	// rightly: one in-place write would then change both). So a source is
	// linkable only if its inode stays nowhere else in the new slot: it is not
	// kept at its own path, heads no hard-link group, and is linked once.
	var leaders map[string]bool                  // active paths heading a hard-link group
	local := map[digest.Digest]*manifest.Entry{} // content -> a clean active path holding it
	linkable := map[digest.Digest]bool{}         // local[d] may be hard-linked once
	if active != nil {
		for i := range active.Entries {
			if e := &active.Entries[i]; e.Link != "" {
				if leaders == nil {
					leaders = map[string]bool{}
				}
				leaders[e.Link] = true
			}
		}
		for i := range active.Entries {
			e := &active.Entries[i]
			if e.Type != manifest.File || drift[e.Path] {
				continue
			}
			free := e.Link == "" && !leaders[e.Path] && !keptIn(t.Manifest, e)
			if _, ok := local[e.SHA256]; !ok || (free && !linkable[e.SHA256]) {
				local[e.SHA256] = e
				linkable[e.SHA256] = free
			}
		}
	}
	p := &Plan{}
	seenBlob := map[digest.Digest]bool{}
	addBlob := func(path string, size int64, d digest.Digest) {
		if !seenBlob[d] {
			seenBlob[d] = true
			p.Blobs = append(p.Blobs, fetch.Blob{Path: path, Size: size, SHA256: d})
			p.DownloadBytes += size
		}
	}
	for i := range t.Manifest.Entries {
		e := &t.Manifest.Entries[i]
		switch e.Type {
		case manifest.Dir, manifest.Symlink, manifest.Char, manifest.Block, manifest.Fifo:
			p.NewInodes++
			continue
		}
		if e.Link != "" {
			continue
		}
		a := &Action{Entry: e}
		var cur *manifest.Entry
		if active != nil && !drift[e.Path] {
			cur = active.Find(e.Path)
		}
		switch {
		case cur != nil && cur.Type == manifest.File && cur.SameInodeMeta(e):
			a.Src = Keep
		case local[e.SHA256] != nil:
			src := local[e.SHA256]
			a.From = src.Path
			if linkable[e.SHA256] && src.SameInodeMeta(e) {
				a.Src = Link
				linkable[e.SHA256] = false
			} else {
				a.Src = Copy
			}
		default:
			for _, d := range t.Delivery.DeltasTo(e.SHA256) {
				if base := local[d.From]; base != nil {
					d := d
					a.Src, a.Delta, a.From = Delta, &d, base.Path
					break
				}
			}
			if a.Delta == nil {
				o := t.Delivery.Object(e.SHA256)
				if o == nil {
					return nil, fmt.Errorf("version %d: no object for %s (%s) in the delivery list: %w", t.Ref.Version, e.Path, e.SHA256, errCorruptRepo)
				}
				a.Src, a.Object = Object, o
				addBlob(repo.ObjectPath(o.SHA256), o.StoredSize, o.Stored)
			} else {
				addBlob(repo.DeltaPath(a.Delta.From, a.Delta.To), a.Delta.Size, a.Delta.SHA256)
			}
		}
		if a.Src == Copy || a.Src == Delta || a.Src == Object {
			p.NewBytes += (e.Size + 4095) &^ 4095
			p.NewInodes++
		}
		p.Counts[a.Src]++
		p.Actions = append(p.Actions, *a)
	}
	return p, nil
}

// keptIn reports whether the target keeps active entry e's inode at e's own
// path (the Keep case of MakePlan).
func keptIn(target *manifest.Manifest, e *manifest.Entry) bool {
	te := target.Find(e.Path)
	return te != nil && te.Type == manifest.File && te.Link == "" && te.SameInodeMeta(e)
}

// Remaining is the part of DownloadBytes not yet in staging (resume).
func (p *Plan) Remaining(staging string) int64 {
	var n int64
	for _, b := range p.Blobs {
		if _, err := os.Lstat(staging + "/" + b.SHA256.String()); err != nil {
			n += b.Size
		}
	}
	return n
}
