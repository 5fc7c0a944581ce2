package dirwalk

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/manifest"
)

// TestTreeAndPool: the tree lists each directory's children, and a pool
// walking it from the root reaches every directory once, however many
// workers share the queue.
func TestTreeAndPool(t *testing.T) {
	m := &manifest.Manifest{Entries: []manifest.Entry{
		{Path: "bin", Type: manifest.Dir, Mode: 0o755},
		{Path: "bin/sh", Type: manifest.File, Mode: 0o755},
		{Path: "etc", Type: manifest.Dir, Mode: 0o755},
		{Path: "etc/x", Type: manifest.Dir, Mode: 0o755},
		{Path: "etc/x/y", Type: manifest.Symlink, Mode: 0o777, Target: "z"},
	}}
	tr, err := NewTree(m)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]int32{{0, 2}, {1}, {3}, {4}}, tr.Kids); diff != "" {
		t.Errorf("kids (-want +got):\n%s", diff)
	}
	for _, workers := range []int{1, 3} {
		var mu sync.Mutex
		var seen []string
		p := NewPool[int32](len(tr.Kids))
		p.Queue(-1)
		p.Run(context.Background(), workers, func() func(int32) {
			return func(ent int32) {
				id := int32(0)
				if ent >= 0 {
					id = tr.DirID[ent]
					mu.Lock()
					seen = append(seen, m.Entries[ent].Path)
					mu.Unlock()
				}
				for _, k := range tr.Kids[id] {
					if m.Entries[k].Type == manifest.Dir {
						p.Queue(k)
					}
				}
			}
		})
		if len(seen) != 3 {
			t.Errorf("%d workers walked %v, want bin, etc, etc/x once each", workers, seen)
		}
	}
}

func TestNewTreeRefusesUnsorted(t *testing.T) {
	m := &manifest.Manifest{Entries: []manifest.Entry{
		{Path: "etc", Type: manifest.Dir, Mode: 0o755},
		{Path: "bin", Type: manifest.Dir, Mode: 0o755},
	}}
	if _, err := NewTree(m); err == nil {
		t.Fatal("an unsorted manifest was accepted")
	}
}
