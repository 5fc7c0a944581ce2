package slotfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
)

func TestConfinement(t *testing.T) {
	outside := t.TempDir()
	slot := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("keep"), 0644); err != nil {
		t.Fatal(err)
	}
	must(t, os.Mkdir(filepath.Join(slot, "etc"), 0755))
	must(t, os.Symlink(outside, filepath.Join(slot, "evil")))
	must(t, os.Symlink("../../..", filepath.Join(slot, "etc", "up")))
	r, err := Open(slot)
	must(t, err)
	defer r.Close()
	for _, tc := range []struct {
		name string
		op   func() error
		want error
	}{
		{"create under symlinked dir", func() error { _, err := r.CreateTemp("evil"); return err }, errdefs.ErrUnsafePath},
		{"open through symlink", func() error { _, err := r.OpenFile("evil/victim"); return err }, errdefs.ErrUnsafePath},
		{"dotdot", func() error { _, err := r.OpenFile("../x"); return err }, errdefs.ErrUnsafePath},
		{"absolute", func() error { return r.Mkdir("/tmp/x", 0755, 0, 0) }, errdefs.ErrUnsafePath},
		{"mkdir under symlink", func() error { return r.Mkdir("etc/up/x", 0755, 0, 0) }, errdefs.ErrUnsafePath},
		{"removeall through symlink", func() error { return r.RemoveAll("evil/victim") }, errdefs.ErrUnsafePath},
		{"final symlink not followed", func() error { _, err := r.OpenFile("evil"); return err }, errdefs.ErrUnsafePath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// RemoveAll of the symlink itself removes the link, not the target.
	must(t, r.RemoveAll("evil"))
	if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "keep" {
		t.Fatalf("victim changed: %q %v", b, err)
	}
}

func TestTempCommitMeta(t *testing.T) {
	slot := t.TempDir()
	r, err := Open(slot)
	must(t, err)
	defer r.Close()
	must(t, r.Mkdir("bin", 0755, 0, 0))
	must(t, os.WriteFile(filepath.Join(slot, "bin", "su"), []byte("old"), 0755))
	old, _ := r.Lstat("bin/su")
	tmp, err := r.CreateTemp("bin")
	must(t, err)
	_, err = tmp.WriteString("new")
	must(t, err)
	cap := []manifest.Xattr{{Name: manifest.XattrCapability, Value: []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}
	must(t, tmp.SetMeta(04755, 0, 0, cap))
	must(t, tmp.Sync())
	must(t, tmp.Commit("su"))
	must(t, r.SyncDir("bin"))
	st, err := r.Lstat("bin/su")
	must(t, err)
	if st.Ino == old.Ino {
		t.Fatal("commit reused the old inode")
	}
	if st.Mode&07777 != 04755 || st.Mtim.Sec != 1 {
		t.Fatalf("mode %o mtime %d", st.Mode&07777, st.Mtim.Sec)
	}
	xs, err := r.Xattrs("bin/su")
	must(t, err)
	if len(xs) != 1 || string(xs[0].Value) != string(cap[0].Value) {
		t.Fatalf("xattrs %v", xs)
	}
	names, _ := r.ReadDir("bin")
	if len(names) != 1 {
		t.Fatalf("leftovers: %v", names)
	}
}

func TestRemoveAllStaysOnDevice(t *testing.T) {
	slot := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(slot, "a/b/c"), 0755))
	must(t, os.WriteFile(filepath.Join(slot, "a/b/c/f"), nil, 0644))
	must(t, os.Symlink("/etc", filepath.Join(slot, "a/etc")))
	r, err := Open(slot)
	must(t, err)
	defer r.Close()
	must(t, r.RemoveAll("a"))
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(slot, "a"), &st) == nil {
		t.Fatal("a still exists")
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal("followed the symlink")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestMknodSwappedForSymlink: a node swapped for a symlink between its
// creation and its chmod must not pass the mode (or owner) on to the
// symlink's target.
func TestMknodSwappedForSymlink(t *testing.T) {
	outside, slot := t.TempDir(), t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(slot)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	afterMknod = func(dfd int, name string) {
		unix.Unlinkat(dfd, name, 0)
		if err := unix.Symlinkat(victim, dfd, name); err != nil {
			t.Error(err)
		}
	}
	defer func() { afterMknod = nil }()
	if err := r.Mknod("fifo", unix.S_IFIFO|0o4777, 0, 4242, 4242); err == nil {
		t.Error("Mknod succeeded on a node swapped for a symlink")
	}
	var st unix.Stat_t
	if err := unix.Stat(victim, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&07777 != 0o600 || st.Uid == 4242 {
		t.Errorf("the symlink's target got mode %o uid %d", st.Mode&07777, st.Uid)
	}
	if _, err := os.Lstat(filepath.Join(slot, "fifo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused node was placed: %v", err)
	}
	afterMknod = nil
	if err := r.Mknod("fifo", unix.S_IFIFO|0o640, 0, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(slot, "fifo"), &st); err != nil || st.Mode != unix.S_IFIFO|0o640 || st.Uid != 1 || st.Gid != 2 {
		t.Errorf("fifo: mode %o uid %d gid %d, %v", st.Mode, st.Uid, st.Gid, err)
	}
}
