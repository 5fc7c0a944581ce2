package engine

import (
	"cmp"
	"fmt"
	"os"
	"slices"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/report"
)

// Source says where a file's content comes from.
type Source = report.Source

const (
	Keep   = report.Keep
	Link   = report.Link
	Copy   = report.Copy
	Delta  = report.Delta
	Object = report.Object
)

// Action places one file (the first member of its hard-link group).
type Action struct {
	Entry  *manifest.Entry
	Src    Source
	From   string // active-slot path holding the content or the delta base
	Delta  *repo.DeltaRef
	Object *repo.BlobRef
	// With is where a two-base delta's second base is: an active-slot path,
	// or (WithInB) a path of the new slot placed at an earlier Level.
	With    string
	WithInB bool
	// Level orders placement: every action of level k runs after all
	// actions of lower levels are placed (a second base must exist first).
	Level int
	// Pack is the index in the delivery list's Packs of the pack this
	// delta or object is unpacked from, or -1 when it is its own blob.
	Pack int
}

// Plan is what an upgrade will do and cost.
type Plan struct {
	Actions       []Action
	Blobs         []fetch.Blob
	DownloadBytes int64 // sum of blob sizes
	NewBytes      int64 // content written into new inodes (rounded to blocks)
	NewInodes     int64
	Counts        [Object + 1]int
	Levels        int // 1 + the highest Level
	Packs         int // packs fetched
}

// errNoObject: the delivery list names no object for a content the plan
// needs. With a short object list (repo.Delivery.AllObjects) the full list
// may have it; otherwise the repository is corrupt.
var errNoObject = fmt.Errorf("%w: object missing from the delivery list", errCorruptRepo)

// maxLevel bounds chains of second bases (a hostile delivery list cannot
// make the planner or the applier recurse without end).
const maxLevel = 8

// MakePlan compares the target with the active slot's manifest (what the
// clone holds, minus drifted paths) and picks the cheapest source for each
// file: keep, link, copy, delta from a local base, or the whole object;
// then whether a pack delivers some of them more cheaply.
func MakePlan(active *manifest.Manifest, drift map[string]bool, t *Target) (*Plan, error) {
	local, linkable := localContents(active, drift, t)
	split := splitGroups(active, drift, t.Manifest)
	p := &Plan{Levels: 1}
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
		a := Action{Entry: e, Pack: -1}
		var cur *manifest.Entry
		if active != nil && !drift[e.Path] {
			cur = active.Find(e.Path)
		}
		switch {
		case cur != nil && cur.Type == manifest.File && cur.SameInodeMeta(e) && !split[e.Path]:
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
				if base := local[d.From]; base != nil && d.With.IsZero() && (a.Delta == nil || d.Size < a.Delta.Size) {
					d := d
					a.Src, a.Delta, a.From = Delta, &d, base.Path
				}
			}
			if a.Delta == nil {
				o := t.Delivery.Object(e.SHA256)
				if o == nil {
					return nil, fmt.Errorf("version %d: no object for %s (%s) in the delivery list: %w", t.Ref.Version, e.Path, e.SHA256, errNoObject)
				}
				a.Src, a.Object = Object, o
			}
		}
		p.Actions = append(p.Actions, a)
	}
	p.secondBases(local, t)
	p.choosePacks(t)
	p.addBlobs(t)
	for i := range p.Actions {
		a := &p.Actions[i]
		if a.Src == Copy || a.Src == Delta || a.Src == Object {
			p.NewBytes += (a.Entry.Size + 4095) &^ 4095
			p.NewInodes++
		}
		p.Counts[a.Src]++
		p.Levels = max(p.Levels, a.Level+1)
	}
	return p, nil
}

// localContents maps each content of the active slot (not drifted) to a
// path holding it. A Link must not make two paths of the new slot share an
// inode that the target does not declare as a hard-link group (verify
// refuses that, and rightly: one in-place write would then change both).
// So a source is linkable only if its inode stays nowhere else in the new
// slot: it is not kept at its own path, heads no hard-link group, and is
// linked once.
func localContents(active *manifest.Manifest, drift map[string]bool, t *Target) (map[digest.Digest]*manifest.Entry, map[digest.Digest]bool) {
	local := map[digest.Digest]*manifest.Entry{}
	linkable := map[digest.Digest]bool{}
	if active == nil {
		return local, linkable
	}
	var leaders map[string]bool // active paths heading a hard-link group
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
	return local, linkable
}

// keptIn reports whether the target keeps active entry e's inode at e's own
// path (the Keep case of MakePlan).
func keptIn(target *manifest.Manifest, e *manifest.Entry) bool {
	te := target.Find(e.Path)
	return te != nil && te.Type == manifest.File && te.Link == "" && te.SameInodeMeta(e)
}

// splitGroups lists the active paths whose inode the new slot must not keep
// although the target has them unchanged: the later members of an active
// hard-link group that the target holds as separate files. Keeping them
// too would join in the new slot paths the target keeps apart, and verify
// would refuse the slot on every retry. The first member kept keeps the
// inode; the others are placed as new inodes (Copy). Only group members
// are looked at, so the map stays as small as the groups.
func splitGroups(active *manifest.Manifest, drift map[string]bool, target *manifest.Manifest) map[string]bool {
	if active == nil {
		return nil
	}
	var leaders map[string]bool // active paths heading a hard-link group
	for i := range active.Entries {
		if e := &active.Entries[i]; e.Link != "" {
			if leaders == nil {
				leaders = map[string]bool{}
			}
			leaders[e.Link] = true
		}
	}
	if leaders == nil {
		return nil
	}
	taken, split := map[string]bool{}, map[string]bool{} // a leader whose inode is kept; paths not kept
	for i := range active.Entries {
		e := &active.Entries[i]
		g := e.Link
		if g == "" {
			g = e.Path
		}
		if e.Type != manifest.File || !leaders[g] || drift[e.Path] || !keptIn(target, e) {
			continue
		}
		if taken[g] {
			split[e.Path] = true
			continue
		}
		taken[g] = true
	}
	return split
}

// secondBases switches downloads to two-base deltas where those are
// smaller. The second base is a content of the target: local already, or
// placed by another action first. Actions are decided largest first (the
// publisher picks a larger, earlier file as the second base), and a base
// counts only if its producer was decided before: the order is a DAG by
// construction, whatever a delivery list says.
func (p *Plan) secondBases(local map[digest.Digest]*manifest.Entry, t *Target) {
	var cand []int
	for i := range p.Actions {
		a := &p.Actions[i]
		if a.Src != Delta && a.Src != Object {
			continue
		}
		for _, d := range t.Delivery.DeltasTo(a.Entry.SHA256) {
			if !d.With.IsZero() && local[d.From] != nil {
				cand = append(cand, i)
				break
			}
		}
	}
	slices.SortStableFunc(cand, func(x, y int) int { return cmp.Compare(p.Actions[y].Entry.Size, p.Actions[x].Entry.Size) })
	producer := map[digest.Digest]*Action{} // content -> the decided action placing it
	isCand := make(map[int]bool, len(cand))
	for _, i := range cand {
		isCand[i] = true
	}
	for i := range p.Actions {
		if a := &p.Actions[i]; !isCand[i] && (a.Src == Delta || a.Src == Object) {
			producer[a.Entry.SHA256] = a
		}
	}
	for _, i := range cand {
		a := &p.Actions[i]
		cost := a.cost()
		for _, d := range t.Delivery.DeltasTo(a.Entry.SHA256) {
			if d.With.IsZero() || local[d.From] == nil || d.Size >= cost {
				continue
			}
			d := d
			if w := local[d.With]; w != nil {
				a.Src, a.Delta, a.From, a.Object, a.With, a.WithInB, a.Level = Delta, &d, local[d.From].Path, nil, w.Path, false, 0
			} else if w := producer[d.With]; w != nil && w.Level < maxLevel {
				a.Src, a.Delta, a.From, a.Object, a.With, a.WithInB, a.Level = Delta, &d, local[d.From].Path, nil, w.Entry.Path, true, w.Level+1
			} else {
				continue
			}
			cost = d.Size
		}
		producer[a.Entry.SHA256] = a
	}
}

// cost is what the action downloads on its own.
func (a *Action) cost() int64 {
	switch {
	case a.Src == Delta:
		return a.Delta.Size
	case a.Src == Object:
		return a.Object.StoredSize
	}
	return 0
}

// blobOf is what the action fetches when it is not unpacked from a pack.
func (a *Action) blobOf() (fetch.Blob, bool) {
	switch a.Src {
	case Delta:
		return fetch.Blob{Path: a.Delta.Path(), Size: a.Delta.Size, SHA256: a.Delta.SHA256}, true
	case Object:
		return fetch.Blob{Path: repo.ObjectPath(a.Object.SHA256), Size: a.Object.StoredSize, SHA256: a.Object.Stored}, true
	}
	return fetch.Blob{}, false
}

// addBlobs lists each blob once: the chosen packs, then the rest.
func (p *Plan) addBlobs(t *Target) {
	seen := map[digest.Digest]bool{}
	add := func(b fetch.Blob) {
		if !seen[b.SHA256] {
			seen[b.SHA256] = true
			p.Blobs = append(p.Blobs, b)
			p.DownloadBytes += b.Size
		}
	}
	for i := range p.Actions {
		if k := p.Actions[i].Pack; k >= 0 {
			pk := &t.Delivery.Packs[k]
			add(fetch.Blob{Path: repo.PackPath(pk), Size: pk.Size, SHA256: pk.SHA256})
		}
	}
	p.Packs = len(p.Blobs)
	for i := range p.Actions {
		if a := &p.Actions[i]; a.Pack < 0 {
			if b, ok := a.blobOf(); ok {
				add(b)
			}
		}
	}
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
