package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/security"
)

// TestHardLinkGroupSplit: version 1 has x and y hard-linked (and z in the
// same group); version 2 has x and y as separate files with the same
// content, z still linked to x. Keeping every path "unchanged" would keep
// the one shared inode for x and y in the new slot, and verification would
// fail on every retry. Published, upgraded and verified for real.
func TestHardLinkGroupSplit(t *testing.T) {
	ctx := context.Background()
	content := []byte("same bytes in every member\n")
	build := func(dir string, groups [][]string) {
		if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			if err := os.WriteFile(filepath.Join(dir, g[0]), content, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, p := range g[1:] {
				if err := os.Link(filepath.Join(dir, g[0]), filepath.Join(dir, p)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, tc := range []struct {
		name   string
		v1, v2 [][]string
	}{
		{"group unlinked", [][]string{{"usr/bin/x", "usr/bin/y"}}, [][]string{{"usr/bin/x"}, {"usr/bin/y"}}},
		{"group split in two", [][]string{{"usr/bin/x", "usr/bin/y", "usr/bin/z"}}, [][]string{{"usr/bin/x", "usr/bin/z"}, {"usr/bin/y"}}},
		{"leader leaves the group", [][]string{{"usr/bin/x", "usr/bin/y", "usr/bin/z"}}, [][]string{{"usr/bin/x"}, {"usr/bin/y", "usr/bin/z"}}},
		{"group formed", [][]string{{"usr/bin/x"}, {"usr/bin/y"}}, [][]string{{"usr/bin/x", "usr/bin/y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			os.Chmod(base, 0o755)
			rp := publishVersions(t, false)
			for i, groups := range [][][]string{tc.v1, tc.v2} {
				tree := filepath.Join(base, "tree", string(rune('1'+i)))
				build(tree, groups)
				rp.Trees = append(rp.Trees, tree)
				rp.Publish(t, tree)
			}
			_, cfg := rp.Provision(t, "file://"+rp.Dir, 1)
			before := snapshot(t, cfg.Root.Slot(layout.SlotA))
			if _, err := engine.Upgrade(ctx, cfg, engine.Options{}); err != nil {
				t.Fatal(err)
			}
			checkSlotB(t, ctx, cfg, rp.Trees[1])
			svc := &security.Service{Root: cfg.Root, Keys: rp.Keys, Logf: t.Logf}
			if _, err := svc.Verify(ctx, layout.SlotB); err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, cfg.Root.Slot(layout.SlotA))
			if d := cmp.Diff(before, after); d != "" {
				t.Fatalf("the active slot changed:\n%s", d)
			}
		})
	}
}
