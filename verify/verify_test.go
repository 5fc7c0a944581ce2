package verify_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
	"laptop.org/upgrade/verify/verifytest"
)

func open(t testing.TB, dir string) *slotfs.Root {
	t.Helper()
	r, err := slotfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rewrite replaces the content of rel in place (same inode, same mode).
func rewrite(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, rel)
	st, err := os.Lstat(p)
	must(t, err)
	must(t, os.WriteFile(p, data, st.Mode()))
}

// copyToNewInode replaces rel by a copy with the same bytes and metadata.
func copyToNewInode(t *testing.T, dir, rel string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	b, err := os.ReadFile(p)
	must(t, err)
	must(t, os.Remove(p))
	must(t, os.WriteFile(p, b, 0600))
	must(t, os.Lchown(p, int(st.Uid), int(st.Gid)))
	must(t, unix.Chmod(p, st.Mode&07777))
	must(t, verifytest.Touch(p, slotfs.FixedMtime))
}

func TestCleanSlot(t *testing.T) {
	dir := t.TempDir()
	m := verifytest.Tree(t, dir)
	var last [2]int64
	calls := 0
	err := verify.Slot(context.Background(), open(t, dir), m, verify.Options{
		Progress: func(done, total int64) { calls++; last = [2]int64{done, total} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if last[0] != m.ContentSize()+int64(len("#!shell binary, linked twice\n")) || last[0] != last[1] || calls < 2 {
		t.Errorf("progress: %d calls, last %v", calls, last)
	}
	ms, err := verify.All(context.Background(), open(t, dir), m, verify.Options{Workers: 1}, 0)
	must(t, err)
	if len(ms) != 0 {
		t.Errorf("All on a clean slot: %v", ms)
	}
}

func TestDefects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		path   string
		reason string
	}{
		{"content changed, same size", func(t *testing.T, dir string) {
			rewrite(t, dir, "etc/passwd", []byte("toor:x:0:0:root:/root:/bin/sh\n"))
		}, "etc/passwd", "content sha256"},
		{"content of a big file changed", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "usr/bin/big"), os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteAt([]byte{'!'}, verifytest.BigSize-7)
			must(t, err)
			f.Close()
		}, "usr/bin/big", "content sha256"},
		{"size changed", func(t *testing.T, dir string) {
			rewrite(t, dir, "usr/share/motd", []byte("welcome!\n"))
		}, "usr/share/motd", "size 9, manifest says 8"},
		{"mode changed", func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "etc/passwd"), 0600))
		}, "etc/passwd", "mode 0600, manifest says 0644"},
		{"setuid dropped", func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "bin/su"), 0755))
		}, "bin/su", "mode 0755, manifest says 04755"},
		{"owner changed", func(t *testing.T, dir string) {
			must(t, os.Lchown(filepath.Join(dir, "etc/shadow"), 0, 0))
		}, "etc/shadow", "owner 0:0, manifest says 0:42"},
		{"dir mode changed", func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "usr/local"), 0755))
		}, "usr/local", "mode 0755, manifest says 0775"},
		{"xattr removed", func(t *testing.T, dir string) {
			must(t, unix.Lremovexattr(filepath.Join(dir, "bin/ping"), manifest.XattrCapability))
		}, "bin/ping", "xattr security.capability missing"},
		{"xattr changed", func(t *testing.T, dir string) {
			v := append([]byte(nil), verifytest.CapNetBindService...)
			v[4] = 0x10 // cap_net_broadcast instead
			must(t, unix.Lsetxattr(filepath.Join(dir, "bin/ping"), manifest.XattrCapability, v, 0))
		}, "bin/ping", "xattr security.capability=0100000210200000"},
		{"xattr added", func(t *testing.T, dir string) {
			must(t, unix.Lsetxattr(filepath.Join(dir, "etc/passwd"), manifest.XattrCapability, verifytest.CapNetBindService, 0))
		}, "etc/passwd", "not in the manifest"},
		{"symlink target changed", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "etc/motd")))
			must(t, os.Symlink("/tmp/evil", filepath.Join(dir, "etc/motd")))
		}, "etc/motd", `target "/tmp/evil", manifest says "../usr/share/motd"`},
		{"file replaced by symlink", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "etc/passwd")))
			must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "etc/passwd")))
		}, "etc/passwd", "type symlink, manifest says file"},
		{"dir replaced by file", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "etc/empty")))
			must(t, os.WriteFile(filepath.Join(dir, "etc/empty"), nil, 0700))
		}, "etc/empty", "type file, manifest says dir"},
		{"fifo replaced by file", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "run/initctl")))
			must(t, os.WriteFile(filepath.Join(dir, "run/initctl"), nil, 0600))
		}, "run/initctl", "type file, manifest says fifo"},
		{"missing entry", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "usr/lib/libc.so.6")))
		}, "usr/lib/libc.so.6", "missing"},
		{"missing dir", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(filepath.Join(dir, "usr/share/doc")))
		}, "usr/share/doc", "missing"},
		{"extra file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "usr/bin/backdoor"), []byte("x"), 0755))
		}, "usr/bin/backdoor", "file not in the manifest"},
		{"extra empty dir", func(t *testing.T, dir string) {
			must(t, os.Mkdir(filepath.Join(dir, "usr/share/doc/a/new"), 0755))
		}, "usr/share/doc/a/new", "dir not in the manifest"},
		{"leftover temp file", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "etc", slotfs.TempPrefix+"0123abcd"), nil, 0600))
		}, "etc/" + slotfs.TempPrefix + "0123abcd", "file not in the manifest"},
		{"hard-link group broken", func(t *testing.T, dir string) {
			copyToNewInode(t, dir, "usr/bin/sh")
		}, "usr/bin/sh", "not hard-linked to bin/sh"},
		{"unrelated files hard-linked", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "etc/issue.net")))
			must(t, os.Link(filepath.Join(dir, "etc/issue"), filepath.Join(dir, "etc/issue.net")))
		}, "etc/issue.net", "same inode as etc/issue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := verifytest.Tree(t, dir)
			tc.break_(t, dir)
			err := verify.Slot(context.Background(), open(t, dir), m, verify.Options{})
			if !errors.Is(err, errdefs.ErrVerification) {
				t.Fatalf("got %v, want ErrVerification", err)
			}
			prefix := "verify " + dir + ": " + tc.path + ": "
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.reason) {
				t.Errorf("got %q\nwant prefix %q and %q", msg, prefix, tc.reason)
			}
			ms, err := verify.All(context.Background(), open(t, dir), m, verify.Options{}, 10)
			must(t, err)
			if len(ms) != 1 || ms[0].Path != tc.path {
				t.Errorf("All: %v, want just %s", ms, tc.path)
			}
		})
	}
}

// TestFirstBadPath: with several defects, the one named is the first in
// manifest (bytewise) order, whatever the workers do. "a-b" sorts before
// "a/x" bytewise though a directory walk visits a/ first.
func TestFirstBadPath(t *testing.T) {
	dir := t.TempDir()
	m := verifytest.Tree(t, dir)
	rewrite(t, dir, "a/x", []byte("A/X\n"))
	must(t, os.Chmod(filepath.Join(dir, "a-b"), 0600))
	must(t, os.WriteFile(filepath.Join(dir, "zzz"), nil, 0644))
	must(t, os.Remove(filepath.Join(dir, "usr/lib/libc.so.6")))
	must(t, os.Chmod(filepath.Join(dir, "bin/su"), 0755))
	copyToNewInode(t, dir, "usr/bin/sh")
	want := []verify.Mismatch{
		{"a-b", "mode 0600, manifest says 0644"},
		{"a/x", ""},
		{"bin/su", "mode 0755, manifest says 04755"},
		{"usr/bin/sh", "not hard-linked to bin/sh"},
		{"usr/lib/libc.so.6", "missing"},
		{"zzz", "file not in the manifest"},
	}
	for run := 0; run < 10; run++ {
		for _, w := range []int{1, 2, 3, 8} {
			err := verify.Slot(context.Background(), open(t, dir), m, verify.Options{Workers: w})
			if want := "verify " + dir + ": a-b: mode 0600, manifest says 0644: verification failed"; err == nil || err.Error() != want {
				t.Fatalf("workers %d: got %v, want %s", w, err, want)
			}
		}
	}
	ms, err := verify.All(context.Background(), open(t, dir), m, verify.Options{}, 0)
	must(t, err)
	for i := range ms {
		if strings.HasPrefix(ms[i].Reason, "content sha256") {
			ms[i].Reason = "" // digests are noise here
		}
	}
	if d := cmp.Diff(want, ms); d != "" {
		t.Errorf("All (-want +got):\n%s", d)
	}
	ms, err = verify.All(context.Background(), open(t, dir), m, verify.Options{Workers: 3}, 2)
	must(t, err)
	if len(ms) != 2 || ms[0].Path != "a-b" || ms[1].Path != "a/x" {
		t.Errorf("All max 2: %v", ms)
	}
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	m := verifytest.Tree(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := verify.Slot(ctx, open(t, dir), m, verify.Options{})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errdefs.ErrCancelled) {
		t.Fatalf("got %v, want cancelled", err)
	}
	// Cancelled from inside: the first progress report cancels.
	ctx, cancel = context.WithCancel(context.Background())
	err = verify.Slot(ctx, open(t, dir), m, verify.Options{Progress: func(int64, int64) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want cancelled", err)
	}
}

// TestSymlinkedDir: a directory swapped for a symlink to outside is a
// mismatch, and nothing outside is read.
func TestSymlinkedDir(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	m := verifytest.Tree(t, dir)
	must(t, os.Rename(filepath.Join(dir, "usr/share"), filepath.Join(outside, "share")))
	must(t, os.Symlink(filepath.Join(outside, "share"), filepath.Join(dir, "usr/share")))
	err := verify.Slot(context.Background(), open(t, dir), m, verify.Options{})
	if err == nil || !strings.Contains(err.Error(), ": usr/share: type symlink, manifest says dir") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	m := verifytest.Generate(b, dir, 10000)
	r := open(b, dir)
	b.SetBytes(m.ContentSize())
	b.ResetTimer()
	for b.Loop() {
		if err := verify.Slot(context.Background(), r, m, verify.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
