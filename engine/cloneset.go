package engine

import "laptop.org/upgrade/manifest"

// cloneSet narrows the active manifest, in place, to what the clone is to
// make in the inactive slot: the directories the target still has, the
// files it keeps (the Keep case of MakePlan: same path, same inode
// metadata, not drifted), and the symlinks and nodes it has unchanged.
// Everything else would be linked only to be replaced or unlinked moments
// later: on the Go pair that was 5,600 of 15,000 links, each one a write to
// a shared inode's link count, undone by as many renames over it and
// removals, and all of it written back by the apply's syncs.
//
// The active manifest is not used for anything else after planning, and
// compacting it costs no memory (the heap is the job's budget). A kept
// group member whose leader is left out becomes a leader itself: the
// target's own groups are made by the apply's hard-link step.
func cloneSet(active *manifest.Manifest, drift map[string]bool, target *manifest.Manifest) *manifest.Manifest {
	split := splitGroups(active, drift, target)
	out := active.Entries[:0]
	kept := map[string]bool{} // file paths in the set, for group members
	for i := range active.Entries {
		e := active.Entries[i]
		te := target.Find(e.Path)
		if te == nil {
			continue
		}
		switch e.Type {
		case manifest.Dir:
			if te.Type != manifest.Dir {
				continue
			}
		case manifest.File:
			if drift[e.Path] || !keptIn(target, &e) || split[e.Path] {
				continue
			}
			if e.Link != "" && !kept[e.Link] {
				e.Link = ""
			}
			if e.Link == "" {
				kept[e.Path] = true
			}
		default:
			if !te.SameInodeMeta(&e) {
				continue
			}
		}
		out = append(out, e)
	}
	clear(active.Entries[len(out):]) // drop the strings the tail still references
	active.Entries = out
	return active
}
