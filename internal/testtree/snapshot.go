package testtree

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/manifest"
)

// Node is everything about a path that an upgrade must not change in the
// active slot. ctime is left out: linking an inode into the clone bumps it.
type Node struct {
	Ino, Size   uint64
	Mode        uint32
	UID, GID    uint32
	Mtime       int64
	SHA, Target string
	Xattrs      string
}

// Snapshot records every entry under dir (not below the paths in skip), for
// a before/after comparison with cmp.Diff.
func Snapshot(t testing.TB, dir string, skip map[string]bool) map[string]Node {
	t.Helper()
	out := map[string]Node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip[p] {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := Node{Ino: st.Ino, Size: uint64(st.Size), Mode: st.Mode, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Sec}
		switch {
		case d.Type().IsRegular():
			h, _, err := manifest.HashFile(p)
			if err != nil {
				return err
			}
			n.SHA = h.String()
			xs, _ := manifest.ReadXattrs(p)
			for _, x := range xs {
				n.Xattrs += x.Name + "=" + string(x.Value) + ";"
			}
		case d.Type()&fs.ModeSymlink != 0:
			n.Target, _ = os.Readlink(p)
		case d.IsDir():
			n.Size, n.Mtime = 0, 0 // directory sizes and mtimes move with their entries
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
