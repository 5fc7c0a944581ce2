package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/verify"
	"laptop.org/upgrade/verify/verifytest"
)

// Options.Written: a file whose inode the caller wrote with the manifest's
// digest is not read again (a change to its bytes after that goes unseen,
// which is the point: they were hashed as written), and everything else
// about it, and every other file, is checked as usual.
func TestWritten(t *testing.T) {
	for _, tc := range []struct {
		name   string
		path   string                            // the file recorded as written,
		sum    func(digest.Digest) digest.Digest // with this digest of its entry's
		change func(t *testing.T, dir string)
		want   string // "" or the path and a fragment of the reason
	}{
		{"bytes not read again", "etc/passwd", same, func(t *testing.T, dir string) {
			rewrite(t, dir, "etc/passwd", []byte("toor:x:0:0:root:/root:/bin/sh\n"))
		}, ""},
		{"big file's bytes not read again", "usr/bin/big", same, func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "usr/bin/big"), os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteAt([]byte{'!'}, verifytest.BigSize-7)
			must(t, err)
			f.Close()
		}, ""},
		{"another digest recorded: read", "etc/passwd", func(digest.Digest) digest.Digest { return digest.Of([]byte("x")) }, func(t *testing.T, dir string) {
			rewrite(t, dir, "etc/passwd", []byte("toor:x:0:0:root:/root:/bin/sh\n"))
		}, "etc/passwd: content sha256"},
		{"recorded inode replaced: read", "etc/passwd", same, func(t *testing.T, dir string) {
			copyToNewInode(t, dir, "etc/passwd")
			rewrite(t, dir, "etc/passwd", []byte("toor:x:0:0:root:/root:/bin/sh\n"))
		}, "etc/passwd: content sha256"},
		{"metadata still checked", "etc/passwd", same, func(t *testing.T, dir string) {
			must(t, os.Chmod(filepath.Join(dir, "etc/passwd"), 0600))
		}, "etc/passwd: mode 0600"},
		{"other files still read", "etc/passwd", same, func(t *testing.T, dir string) {
			rewrite(t, dir, "etc/issue", []byte("Debian 13\n"))
		}, "etc/issue: content sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := verifytest.Tree(t, dir)
			f, err := os.Open(filepath.Join(dir, tc.path))
			must(t, err)
			var st unix.Stat_t
			must(t, unix.Fstat(int(f.Fd()), &st))
			gen, ok := verify.Generation(int(f.Fd()))
			f.Close()
			if !ok {
				t.Fatalf("no inode generation on the test filesystem")
			}
			written := map[verify.Inode]digest.Digest{{Dev: st.Dev, Ino: st.Ino, Gen: gen}: tc.sum(find(t, m, tc.path).SHA256)}
			tc.change(t, dir)
			ms, err := verify.All(context.Background(), open(t, dir), m, verify.Options{
				Written: func(i verify.Inode) (digest.Digest, bool) { d, ok := written[i]; return d, ok },
			}, 0)
			must(t, err)
			var got []string
			for _, x := range ms {
				got = append(got, x.Path+": "+x.Reason)
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("mismatches %v, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.want)):
				t.Errorf("mismatches %v, want one starting %q", got, tc.want)
			}
		})
	}
}

func same(d digest.Digest) digest.Digest { return d }

func find(t *testing.T, m *manifest.Manifest, p string) *manifest.Entry {
	t.Helper()
	e := m.Find(p)
	if e == nil {
		t.Fatalf("%s not in the manifest", p)
	}
	return e
}
