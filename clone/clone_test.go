package clone_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
	"laptop.org/upgrade/verify/verifytest"
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func open(t testing.TB, dir string) *slotfs.Root {
	t.Helper()
	r, err := slotfs.Open(dir)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// slots makes R/a (the fixture tree) and an empty R/b.
func slots(t *testing.T) (a, b string, m *manifest.Manifest) {
	root := t.TempDir()
	a, b = filepath.Join(root, "a"), filepath.Join(root, "b")
	must(t, os.Mkdir(a, 0755))
	must(t, os.Mkdir(b, 0755))
	return a, b, verifytest.Tree(t, a)
}

// meta is what a hard link would carry between slots; ctime is left out
// because linkat legitimately changes it.
type meta struct {
	Mode, UID, GID uint32
	Size           int64
	Mtime          unix.Timespec
}

// snapshot records every entry's metadata plus a rescan (content, xattrs,
// targets, link groups) of dir.
func snapshot(t *testing.T, dir string) (map[string]meta, *manifest.Manifest) {
	t.Helper()
	out := map[string]meta{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		out[p] = meta{st.Mode, st.Uid, st.Gid, st.Size, st.Mtim}
		return nil
	})
	must(t, err)
	return out, verifytest.Scan(t, dir)
}

// sameInodes checks every file of m in dst is src's inode at that path.
func sameInodes(t *testing.T, src, dst string, m *manifest.Manifest, skip ...string) {
	t.Helper()
	for _, e := range m.Entries {
		if e.Type != manifest.File || contains(skip, e.Path) {
			continue
		}
		var s, d unix.Stat_t
		must(t, unix.Lstat(filepath.Join(src, e.Path), &s))
		must(t, unix.Lstat(filepath.Join(dst, e.Path), &d))
		if s.Ino != d.Ino {
			t.Errorf("%s: dst inode %d, src inode %d", e.Path, d.Ino, s.Ino)
		}
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}

func count(m *manifest.Manifest, typ manifest.Type) int {
	n := 0
	for _, e := range m.Entries {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestFreshClone(t *testing.T) {
	a, b, m := slots(t)
	before, scanBefore := snapshot(t, a)
	var last [2]int
	res, err := clone.Clone(context.Background(), open(t, a), open(t, b), m, clone.Options{
		Progress: func(done, total int) { last = [2]int{done, total} },
	})
	must(t, err)
	want := clone.Result{Linked: count(m, manifest.File), Dirs: count(m, manifest.Dir),
		Symlinks: count(m, manifest.Symlink), Other: count(m, manifest.Fifo)}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("result (-want +got):\n%s", d)
	}
	if last != [2]int{len(m.Entries), len(m.Entries)} {
		t.Errorf("last progress %v", last)
	}
	must(t, verify.Slot(context.Background(), open(t, b), m, verify.Options{}))
	sameInodes(t, a, b, m)
	after, scanAfter := snapshot(t, a)
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("src metadata changed (-before +after):\n%s", d)
	}
	if d := cmp.Diff(scanBefore.Entries, scanAfter.Entries); d != "" {
		t.Errorf("src content changed (-before +after):\n%s", d)
	}
}

// TestReclone: dst holds an older, partly wrong, half-finished tree with
// leftovers; the clone reuses what matches and fixes the rest.
func TestReclone(t *testing.T) {
	a, b, m := slots(t)
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("keep"), 0644))
	_, err := clone.Clone(context.Background(), open(t, a), open(t, b), m, clone.Options{})
	must(t, err)
	p := func(rel string) string { return filepath.Join(b, rel) }
	// An older tree: another inode at etc/passwd, old content elsewhere.
	must(t, os.Remove(p("etc/passwd")))
	must(t, os.WriteFile(p("etc/passwd"), []byte("old passwd\n"), 0644))
	must(t, os.Remove(p("etc/motd")))
	must(t, os.Symlink("old-target", p("etc/motd")))
	must(t, os.Chmod(p("etc"), 0700))
	must(t, os.Remove(p("etc/empty")))
	must(t, os.WriteFile(p("etc/empty"), []byte("not a dir"), 0644))
	must(t, os.Remove(p("lib")))
	must(t, os.MkdirAll(p("lib/old/deeper"), 0755))
	must(t, os.WriteFile(p("lib/old/deeper/f"), nil, 0644))
	must(t, os.MkdirAll(p("opt/gone/away"), 0755)) // not in m
	must(t, os.WriteFile(p("opt/gone/away/f"), nil, 0644))
	// Half-finished: a file and the fifo not there yet, a temp file left.
	must(t, os.Remove(p("usr/bin/big")))
	must(t, os.Remove(p("run/initctl")))
	must(t, os.WriteFile(p("usr/bin/"+slotfs.TempPrefix+"deadbeef"), []byte("partial"), 0600))
	// A symlink to outside where m has a directory.
	must(t, os.RemoveAll(p("usr/share")))
	must(t, os.Symlink(outside, p("usr/share")))

	res, err := clone.Clone(context.Background(), open(t, a), open(t, b), m, clone.Options{Workers: 3})
	must(t, err)
	must(t, verify.Slot(context.Background(), open(t, b), m, verify.Options{}))
	sameInodes(t, a, b, m)
	if got, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(got) != "keep" {
		t.Errorf("outside victim: %q %v", got, err)
	}
	if names, _ := os.ReadDir(outside); len(names) != 1 {
		t.Errorf("outside dir now holds %v", names)
	}
	// Relinked: passwd, big, and the files under the replaced usr/share.
	want := clone.Result{
		Linked:   4,                              // etc/passwd, usr/bin/big, usr/share/motd, usr/share/doc/a/b/c/deep
		Dirs:     6,                              // etc/empty, usr/share, doc, a, b, c
		Symlinks: 2,                              // etc/motd, lib
		Other:    1,                              // run/initctl
		Removed:  1 + 1 + 1 + 4 + 4 + 1 + 1,      // passwd, motd, empty, lib tree, opt tree, temp, usr/share link
		Kept:     len(m.Entries) - 4 - 6 - 2 - 1, // everything else, dirs included
	}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("result (-want +got):\n%s", d)
	}
	// A third run has nothing to do.
	res, err = clone.Clone(context.Background(), open(t, a), open(t, b), m, clone.Options{})
	must(t, err)
	if d := cmp.Diff(clone.Result{Kept: len(m.Entries)}, res); d != "" {
		t.Errorf("idempotent re-run (-want +got):\n%s", d)
	}
}

func TestDrift(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, a string)
		want   []clone.Drift // Reason compared by prefix
	}{
		{"bytes changed in place", func(t *testing.T, a string) {
			must(t, os.WriteFile(filepath.Join(a, "etc/passwd"), []byte("toor:x:0:0:root:/root:/bin/sh\n"), 0))
		}, []clone.Drift{{"etc/passwd", "content changed (sha256 "}}},
		{"chmod", func(t *testing.T, a string) {
			must(t, os.Chmod(filepath.Join(a, "etc/shadow"), 0644))
		}, []clone.Drift{{"etc/shadow", "mode 0644, manifest says 0640"}}},
		{"chown", func(t *testing.T, a string) {
			must(t, os.Lchown(filepath.Join(a, "usr/local/notes"), 0, 0))
		}, []clone.Drift{{"usr/local/notes", "owner 0:0, manifest says 1000:1000"}}},
		{"touched only", func(t *testing.T, a string) {
			must(t, verifytest.Touch(filepath.Join(a, "etc/passwd"), unix.Timespec{Sec: 1700000000}))
		}, nil},
		{"same bytes rewritten, capability lost", func(t *testing.T, a string) {
			must(t, unix.Lremovexattr(filepath.Join(a, "bin/ping"), manifest.XattrCapability))
		}, []clone.Drift{{"bin/ping", "xattrs none, manifest says security.capability="}}},
		{"removed", func(t *testing.T, a string) {
			must(t, os.Remove(filepath.Join(a, "usr/lib/libc.so.6")))
		}, []clone.Drift{{"usr/lib/libc.so.6", "missing"}}},
		{"replaced by symlink", func(t *testing.T, a string) {
			must(t, os.Remove(filepath.Join(a, "a-b")))
			must(t, os.Symlink("a/x", filepath.Join(a, "a-b")))
		}, []clone.Drift{{"a-b", "type symlink, manifest says file"}}},
		{"link group member replaced", func(t *testing.T, a string) {
			p := filepath.Join(a, "usr/bin/sh")
			b, err := os.ReadFile(p)
			must(t, err)
			must(t, os.Remove(p))
			must(t, os.WriteFile(p, b, 0755))
			must(t, unix.Chmod(p, 0755))
			must(t, verifytest.Touch(p, slotfs.FixedMtime))
		}, []clone.Drift{{"usr/bin/sh", "not hard-linked to bin/sh"}}},
	} {
		// "fresh": dst empty. "over old clone": dst was cloned before the
		// change, so an in-place change already shows through dst's link
		// and Clone must unlink it there.
		for _, old := range []bool{false, true} {
			name := tc.name + map[bool]string{false: "/fresh", true: "/over old clone"}[old]
			t.Run(name, func(t *testing.T) {
				a, b, m := slots(t)
				if old {
					_, err := clone.Clone(context.Background(), open(t, a), open(t, b), m, clone.Options{})
					must(t, err)
				}
				tc.change(t, a)
				drift, err := clone.DetectDrift(context.Background(), open(t, a), m, 2)
				must(t, err)
				checkDrift(t, "DetectDrift", drift, tc.want)
				res, err := clone.Clone(context.Background(), open(t, a), open(t, b), m, clone.Options{})
				must(t, err)
				checkDrift(t, "Clone", res.Drift, tc.want)
				// dst is right except that the drifted files are absent.
				ms, err := verify.All(context.Background(), open(t, b), m, verify.Options{}, 0)
				must(t, err)
				var missing []verify.Mismatch
				var skip []string
				for _, d := range tc.want {
					missing = append(missing, verify.Mismatch{Path: d.Path, Reason: "missing"})
					skip = append(skip, d.Path)
				}
				if d := cmp.Diff(missing, ms); d != "" {
					t.Errorf("dst mismatches (-want +got):\n%s", d)
				}
				sameInodes(t, a, b, m, skip...)
			})
		}
	}
}

func checkDrift(t *testing.T, what string, got, want []clone.Drift) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Path == want[i].Path && strings.HasPrefix(got[i].Reason, want[i].Reason)
	}
	if !ok {
		t.Errorf("%s drift: got %q, want %q", what, got, want)
	}
}

func TestCancel(t *testing.T) {
	a, b, m := slots(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := clone.Clone(ctx, open(t, a), open(t, b), m, clone.Options{})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errdefs.ErrCancelled) {
		t.Fatalf("got %v, want cancelled", err)
	}
	// Cancelled part-way (after the first directory) leaves a half-made
	// clone; the next Clone finishes it.
	ctx, cancel = context.WithCancel(context.Background())
	_, err = clone.Clone(ctx, open(t, a), open(t, b), m, clone.Options{Workers: 1, Progress: func(int, int) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want cancelled", err)
	}
	if verify.Slot(context.Background(), open(t, b), m, verify.Options{}) == nil {
		t.Fatal("a cancelled clone verified")
	}
	res, err := clone.Clone(context.Background(), open(t, a), open(t, b), m, clone.Options{})
	must(t, err)
	if res.Kept == 0 {
		t.Errorf("nothing of the cancelled run was reused: %+v", res)
	}
	must(t, verify.Slot(context.Background(), open(t, b), m, verify.Options{}))
}

func BenchmarkClone(b *testing.B) {
	root := b.TempDir()
	src := filepath.Join(root, "a")
	must(b, os.Mkdir(src, 0755))
	m := verifytest.Generate(b, src, 10000)
	sr := open(b, src)
	for b.Loop() {
		b.StopTimer()
		dst := filepath.Join(root, "b")
		must(b, os.RemoveAll(dst))
		must(b, os.Mkdir(dst, 0755))
		dr := open(b, dst)
		b.StartTimer()
		if _, err := clone.Clone(context.Background(), sr, dr, m, clone.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
