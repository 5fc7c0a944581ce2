package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
)

// Scan walks dir (not following symlinks) and builds its entries, hashing
// files on every core. Hard links inside the tree become link groups. The
// header is left for the caller to fill.
func Scan(ctx context.Context, dir string) (*Manifest, error) {
	type inode struct{ dev, ino uint64 }
	m := &Manifest{}
	seen := map[inode]string{}
	var files []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("scan %s: %w", p, err)
		}
		e := Entry{Path: filepath.ToSlash(rel), Mode: st.Mode & 07777, UID: st.Uid, GID: st.Gid}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e.Type, e.Size = File, st.Size
			if st.Nlink > 1 {
				k := inode{st.Dev, st.Ino}
				if first, ok := seen[k]; ok {
					e.Link = first
				} else {
					seen[k] = e.Path
				}
			}
			files = append(files, len(m.Entries))
		case unix.S_IFDIR:
			e.Type = Dir
		case unix.S_IFLNK:
			e.Type = Symlink
			if e.Target, err = os.Readlink(p); err != nil {
				return fmt.Errorf("scan %s: %w", p, err)
			}
			e.Mode = 0777
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			e.Type = map[uint32]Type{unix.S_IFCHR: Char, unix.S_IFBLK: Block, unix.S_IFIFO: Fifo}[st.Mode&unix.S_IFMT]
			e.Rdev = st.Rdev
		default:
			return fmt.Errorf("scan %s: unsupported file type %o", p, st.Mode&unix.S_IFMT)
		}
		if e.Type == File || e.Type == Dir {
			if e.Xattrs, err = ReadXattrs(p); err != nil {
				return fmt.Errorf("scan %s: %w", p, err)
			}
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := hashFiles(ctx, dir, m.Entries, files); err != nil {
		return nil, err
	}
	// WalkDir visits in lexical order per directory, which is not bytewise
	// order of full paths ("a/b" vs "a-b"); links must name the first member
	// in the final order, so sort and then re-point the groups.
	m.Sort()
	relink(m.Entries)
	return m, nil
}

// relink makes each hard-link group name its smallest path as the first member.
func relink(es []Entry) {
	groups := map[string][]int{}
	for i := range es {
		if es[i].Type != File {
			continue
		}
		root := es[i].Link
		if root == "" {
			root = es[i].Path
		}
		groups[root] = append(groups[root], i)
	}
	for _, idx := range groups {
		if len(idx) < 2 {
			continue
		}
		sort.Ints(idx)
		first := es[idx[0]].Path
		es[idx[0]].Link = ""
		for _, i := range idx[1:] {
			es[i].Link = first
		}
	}
}

func hashFiles(ctx context.Context, dir string, es []Entry, idx []int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range idx {
		e := &es[i]
		if gctx.Err() != nil {
			break
		}
		if e.Link != "" {
			continue
		}
		g.Go(func() error {
			d, n, err := HashFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
			if err == nil && n != e.Size {
				err = fmt.Errorf("%s changed while scanning", e.Path)
			}
			if err != nil {
				return err
			}
			e.SHA256 = d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Link members take their group's digest.
	byPath := map[string]digest.Digest{}
	for _, i := range idx {
		if es[i].Link == "" {
			byPath[es[i].Path] = es[i].SHA256
		}
	}
	for _, i := range idx {
		if es[i].Link != "" {
			es[i].SHA256 = byPath[es[i].Link]
		}
	}
	return nil
}

// HashFile returns the SHA-256 and length of a file's content.
// A symlink swapped in for the file is refused (O_NOFOLLOW), not followed.
func HashFile(p string) (digest.Digest, int64, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return digest.Zero, 0, err
	}
	defer f.Close()
	return digest.FromReader(f)
}

// ReadXattrs reads the tracked attributes of p (not following symlinks).
func ReadXattrs(p string) ([]Xattr, error) {
	return readXattrs(func(name string, buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
}

// ReadXattrsFd reads the tracked attributes of an open file or directory.
// One flistxattr tells which it has: most files have none.
func ReadXattrsFd(fd int) ([]Xattr, error) {
	buf := make([]byte, 4096)
	has := TrackedOnFd(fd, buf)
	return readXattrs(func(name string, buf []byte) (int, error) {
		if has.Has(name) {
			return unix.Fgetxattr(fd, name, buf)
		}
		return 0, unix.ENODATA
	})
}

// XattrSet is a set of TrackedXattrs, bit i for TrackedXattrs[i].
type XattrSet uint

// AllTracked is the set of every tracked name: what to assume of a file
// whose list could not be read.
const AllTracked XattrSet = 1<<len(trackedNames) - 1

// Has reports whether name is in the set; an untracked name never is.
func (s XattrSet) Has(name string) bool {
	i := slices.Index(TrackedXattrs, name)
	return i >= 0 && s&(1<<i) != 0
}

// TrackedOnFd lists the attributes of the open file fd once, into buf, and
// returns the tracked ones it may have. Asking each tracked name instead
// costs a syscall that fails, for almost every file. A list that does not
// fit buf, or fails, gives AllTracked: the caller then asks each name.
func TrackedOnFd(fd int, buf []byte) XattrSet {
	n, err := unix.Flistxattr(fd, buf)
	switch {
	case errors.Is(err, unix.ENOTSUP):
		return 0
	case err != nil:
		return AllTracked
	}
	var set XattrSet
	for list := buf[:n]; len(list) > 0; {
		name, rest, _ := bytes.Cut(list, []byte{0})
		if i := slices.Index(TrackedXattrs, string(name)); i >= 0 {
			set |= 1 << i
		}
		list = rest
	}
	return set
}

func readXattrs(get func(string, []byte) (int, error)) ([]Xattr, error) {
	var out []Xattr
	buf := make([]byte, 4096)
	for _, name := range TrackedXattrs {
		n, err := get(name, buf)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("xattr %s: %w", name, err)
		}
		out = append(out, Xattr{Name: name, Value: append([]byte(nil), buf[:n]...)})
	}
	return out, nil
}
