// Package testtree generates OS-like trees for tests and the demo: two
// versions that differ in every way an upgrade must handle (changed, new,
// removed and moved files, mode-only and owner-only changes, setuid, a
// capability xattr, hard links, symlinks to files and directories, empty
// directories, a file replaced by a directory and vice versa).
package testtree

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CapNetBindService is a v2 security.capability value granting
// cap_net_bind_service (permitted + effective).
var CapNetBindService = []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// CapNetRaw grants cap_net_raw.
var CapNetRaw = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// Blob returns n deterministic, compressible-but-not-trivial bytes.
func Blob(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	words := []string{"kernel ", "sugar ", "journal ", "activity ", "mesh ", "olpc\n", "\x00\x01\x02", "laptop "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.Intn(len(words))])
		if r.Intn(40) == 0 {
			var x [8]byte
			r.Read(x[:])
			b.Write(x[:])
		}
	}
	return b.Bytes()[:n]
}

// Edit returns b with a few local changes (what a rebuilt binary looks like).
func Edit(b []byte, seed int64) []byte {
	out := append([]byte(nil), b...)
	r := rand.New(rand.NewSource(seed))
	for i := 0; i < 8; i++ {
		p := r.Intn(len(out) - 64)
		copy(out[p:], fmt.Sprintf("patched-%d-%d", seed, i))
	}
	return append(out, Blob(2048, seed)...)
}

type spec struct {
	path string
	kind byte // f file, d dir, l symlink, h hardlink (data = target path)
	mode os.FileMode
	data []byte
	link string
	cap  []byte
	uid  int
}

// Build writes version v (1 or 2) of the sample tree into dir, with every
// file's mtime set to 1 s as deployed files have.
func Build(dir string, v int) error {
	big := Blob(3<<20, 1)
	lib := Blob(300<<10, 2)
	specs := []spec{
		{path: "bin", kind: 'd', mode: 0755},
		{path: "etc", kind: 'd', mode: 0755},
		{path: "etc/os-release", kind: 'f', mode: 0644, data: []byte(fmt.Sprintf("NAME=\"OLPC OS\"\nVERSION_ID=%d\n", v))},
		{path: "lib", kind: 'd', mode: 0755},
		{path: "usr", kind: 'd', mode: 0755},
		{path: "usr/bin", kind: 'd', mode: 0755},
		{path: "usr/lib", kind: 'd', mode: 0755},
		{path: "usr/share", kind: 'd', mode: 0755},
		{path: "usr/share/empty", kind: 'd', mode: 0700},
		{path: "var", kind: 'd', mode: 0755},
		{path: "sbin", kind: 'l', link: "usr/bin"},
		{path: "usr/bin/python", kind: 'l', link: "python3"},
		{path: "usr/bin/python3", kind: 'f', mode: 0755, data: Blob(200<<10, 3)},
		{path: "usr/bin/dangling", kind: 'l', link: "../does/not/exist"},
		{path: "usr/bin/ping", kind: 'f', mode: 0755, data: Blob(60<<10, 4), cap: CapNetRaw},
		{path: "usr/bin/unchanged", kind: 'f', mode: 0755, data: Blob(100<<10, 5)},
		{path: "usr/bin/same-a", kind: 'f', mode: 0644, data: []byte("identical content\n")},
		{path: "usr/bin/same-b", kind: 'f', mode: 0644, data: []byte("identical content\n")},
		{path: "usr/bin/hl1", kind: 'f', mode: 0755, data: Blob(40<<10, 6)},
		{path: "usr/bin/hl2", kind: 'h', link: "usr/bin/hl1"},
		{path: "usr/lib/libbig.so", kind: 'f', mode: 0644, data: big},
		{path: "usr/lib/libc.so", kind: 'f', mode: 0644, data: lib},
		{path: "lib/libc.so.6", kind: 'l', link: "../usr/lib/libc.so"},
	}
	if v == 1 {
		specs = append(specs,
			spec{path: "bin/su", kind: 'f', mode: 0755, data: Blob(50<<10, 7)},
			spec{path: "usr/bin/httpd", kind: 'f', mode: 0755, data: Blob(30<<10, 8)},
			spec{path: "usr/share/doc", kind: 'f', mode: 0644, data: []byte("was a file\n")},
			spec{path: "usr/share/was-dir", kind: 'd', mode: 0755},
			spec{path: "usr/share/was-dir/x", kind: 'f', mode: 0644, data: []byte("x\n")},
			spec{path: "usr/share/removed.txt", kind: 'f', mode: 0644, data: Blob(10<<10, 9)},
			spec{path: "usr/share/old-name", kind: 'f', mode: 0644, data: Blob(80<<10, 10)},
			spec{path: "usr/bin/owner", kind: 'f', mode: 0644, data: []byte("owned\n"), uid: 0},
			spec{path: "etc/link-to-dir", kind: 'l', link: "../usr/share"},
		)
	} else {
		specs = append(specs,
			// mode-only change: setuid added
			spec{path: "bin/su", kind: 'f', mode: 04755, data: Blob(50<<10, 7)},
			// xattr-only change
			spec{path: "usr/bin/httpd", kind: 'f', mode: 0755, data: Blob(30<<10, 8), cap: CapNetBindService},
			// file replaced by a directory and vice versa
			spec{path: "usr/share/doc", kind: 'd', mode: 0755},
			spec{path: "usr/share/doc/README", kind: 'f', mode: 0644, data: []byte("now a dir\n")},
			spec{path: "usr/share/was-dir", kind: 'f', mode: 0644, data: []byte("now a file\n")},
			// moved file: same content, new name
			spec{path: "usr/share/new-name", kind: 'f', mode: 0644, data: Blob(80<<10, 10)},
			// owner-only change
			spec{path: "usr/bin/owner", kind: 'f', mode: 0644, data: []byte("owned\n"), uid: 65534},
			// symlink to a directory, retargeted
			spec{path: "etc/link-to-dir", kind: 'l', link: "../usr/lib"},
			// new file
			spec{path: "usr/bin/newtool", kind: 'f', mode: 0755, data: Blob(120<<10, 11)},
		)
		// changed contents: small edits of big files (deltas pay off)
		for i := range specs {
			switch specs[i].path {
			case "usr/lib/libbig.so":
				specs[i].data = Edit(big, 21)
			case "usr/lib/libc.so":
				specs[i].data = Edit(lib, 22)
			case "usr/bin/hl1":
				specs[i].data = Edit(specs[i].data, 23)
			}
		}
	}
	return write(dir, specs)
}

func write(dir string, specs []spec) error {
	if err := os.MkdirAll(dir, 0755); err != nil {
		return err
	}
	for _, s := range specs {
		p := filepath.Join(dir, s.path)
		if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
			return err
		}
		switch s.kind {
		case 'd':
			if err := os.Mkdir(p, s.mode); err != nil && !os.IsExist(err) {
				return err
			}
			if err := unix.Chmod(p, uint32(s.mode)); err != nil {
				return err
			}
		case 'l':
			if err := os.Symlink(s.link, p); err != nil {
				return err
			}
		case 'h':
			if err := os.Link(filepath.Join(dir, s.link), p); err != nil {
				return err
			}
		case 'f':
			if err := os.WriteFile(p, s.data, 0600); err != nil {
				return err
			}
			if err := os.Chown(p, s.uid, s.uid); err != nil {
				return err
			}
			if err := unix.Chmod(p, uint32(s.mode)); err != nil {
				return err
			}
			if s.cap != nil {
				if err := unix.Setxattr(p, "security.capability", s.cap, 0); err != nil {
					return fmt.Errorf("setxattr %s: %w", p, err)
				}
			}
			ts := []unix.Timespec{{Sec: 1}, {Sec: 1}}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
	}
	return nil
}
