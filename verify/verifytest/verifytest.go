// Package verifytest builds real slot trees for the tests and benchmarks of
// clone, verify and their callers. Trees are built with plain os/unix calls,
// not with the code under test, and described with manifest.Scan, so a test
// compares our code against an independent reading of the filesystem.
package verifytest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

// CapNetBindService is a version-2 security.capability value granting
// cap_net_bind_service (permitted + effective).
var CapNetBindService = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// BigSize is the size of the one large file of Tree, big enough to take the
// "large file" paths (split hashing tasks, several read buffers).
const BigSize = 3<<20 + 123

// Tree fills dir (which must exist and be empty) with every kind of entry a
// slot can hold and returns its manifest:
//
//	a-b, a/x                  bytewise order: "a-b" < "a/x"
//	bin/su                    setuid 04755
//	bin/ping                  security.capability xattr
//	bin/sh, usr/bin/sh        one hard-link group
//	etc/passwd, etc/shadow    0644, 0640 root:42
//	etc/issue, etc/issue.net  identical bytes and metadata, NOT linked
//	etc/empty/                empty dir 0700
//	etc/motd -> ../usr/share/motd    symlink to a file
//	lib -> usr/lib                   symlink to a dir
//	dangling -> /nonexistent/target  dangling symlink
//	run/initctl               fifo 0600
//	usr/bin/big               BigSize random bytes
//	usr/local/ (1000:1000 0775), usr/local/notes (1000:1000 0664)
//	usr/share/doc/a/b/c/deep  nested dirs
//
// Every file and the fifo get mtime slotfs.FixedMtime, as deployed slots do.
func Tree(t testing.TB, dir string) *manifest.Manifest {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }
	mkdir := func(rel string, mode os.FileMode, uid, gid int) {
		must(os.Mkdir(p(rel), 0700))
		must(os.Lchown(p(rel), uid, gid))
		must(os.Chmod(p(rel), mode))
	}
	file := func(rel string, data []byte, mode os.FileMode, uid, gid int) {
		must(os.WriteFile(p(rel), data, 0600))
		must(os.Lchown(p(rel), uid, gid)) // before chmod: chown clears setuid
		must(os.Chmod(p(rel), mode))
	}
	for _, d := range []string{"a", "bin", "etc", "run", "usr", "usr/bin", "usr/lib", "usr/share",
		"usr/share/doc", "usr/share/doc/a", "usr/share/doc/a/b", "usr/share/doc/a/b/c"} {
		mkdir(d, 0755, 0, 0)
	}
	mkdir("etc/empty", 0700, 0, 0)
	mkdir("usr/local", 0775, 1000, 1000)
	file("a-b", []byte("a-b\n"), 0644, 0, 0)
	file("a/x", []byte("a/x\n"), 0644, 0, 0)
	file("bin/su", []byte("#!su binary\n"), 0755|os.ModeSetuid, 0, 0)
	file("bin/ping", []byte("#!ping binary\n"), 0755, 0, 0)
	must(unix.Lsetxattr(p("bin/ping"), manifest.XattrCapability, CapNetBindService, 0))
	file("bin/sh", []byte("#!shell binary, linked twice\n"), 0755, 0, 0)
	must(os.Link(p("bin/sh"), p("usr/bin/sh")))
	file("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0644, 0, 0)
	file("etc/issue", []byte("Debian 12\n"), 0644, 0, 0) // identical to issue.net but not linked
	file("etc/issue.net", []byte("Debian 12\n"), 0644, 0, 0)
	file("etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0640, 0, 42)
	must(os.Symlink("../usr/share/motd", p("etc/motd")))
	must(os.Symlink("usr/lib", p("lib")))
	must(os.Symlink("/nonexistent/target", p("dangling")))
	must(unix.Mkfifo(p("run/initctl"), 0600))
	must(os.Chmod(p("run/initctl"), 0600))
	big := make([]byte, BigSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	file("usr/bin/big", big, 0755, 0, 0)
	file("usr/lib/libc.so.6", []byte("\x7fELF libc\n"), 0644, 0, 0)
	file("usr/local/notes", []byte("local notes\n"), 0664, 1000, 1000)
	file("usr/share/motd", []byte("welcome\n"), 0644, 0, 0)
	file("usr/share/doc/a/b/c/deep", []byte("deep\n"), 0644, 0, 0)
	SetFixedMtimes(t, dir)
	return Scan(t, dir)
}

// SetFixedMtimes gives every non-directory, non-symlink below dir the
// deployed mtime.
func SetFixedMtimes(t testing.TB, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&os.ModeSymlink != 0 {
			return err
		}
		return Touch(path, slotfs.FixedMtime)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Touch sets path's atime and mtime without following a symlink.
func Touch(path string, ts unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// Scan returns dir's manifest, failing the test on error.
func Scan(t testing.TB, dir string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Scan(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Channel, m.Version = "test", 1
	return m
}

// Generate fills dir with about n small files (1-16 KiB of pseudo-random
// bytes) in directories of 100, plus a symlink per directory, the shape of
// a typical OS tree where most files are small, for benchmarks.
func Generate(t testing.TB, dir string, n int) *manifest.Manifest {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 7))
	buf := make([]byte, 16<<10)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for d := 0; d*100 < n; d++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", d%10), fmt.Sprintf("s%04d", d))
		if err := os.MkdirAll(sub, 0755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < 100 && d*100+f < n; f++ {
			size := 1<<10 + r.IntN(15<<10)
			buf[0] = byte(f) // distinct contents per directory slot
			buf[1] = byte(d)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), buf[:size], 0644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("f000", filepath.Join(sub, "link")); err != nil {
			t.Fatal(err)
		}
	}
	SetFixedMtimes(t, dir)
	return Scan(t, dir)
}
