package clone

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/dirwalk"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

// Drift is an entry of the active slot that no longer matches its manifest.
type Drift struct{ Path, Reason string }

// DetectDrift finds the entries of src that no longer match m, the active
// slot's manifest. Each entry costs one fstatat (type, mode, owner, size,
// mtime == slotfs.FixedMtime, rdev) plus a readlinkat for symlinks; only a
// file whose stat disagrees in nothing but its mtime is hashed, because
// then the bytes decide (a daemon that rewrote a config with the same bytes
// has not drifted). A file with the right bytes but the wrong mode or owner
// IS drift: a hard link would carry that metadata into the new slot.
// Tracked xattrs are read only for files whose manifest entry has some, or
// that are hashed anyway: a stat cannot see them, and gaining a capability
// needs CAP_SETFCAP, while losing one (a write or chown drops it) also
// moves the mtime or owner. The full check is verify.Slot's job.
//
// The result is sorted by path. Directories of src are walked in parallel
// by workers goroutines (0 = GOMAXPROCS).
func DetectDrift(ctx context.Context, src *slotfs.Root, m *manifest.Manifest, workers int) ([]Drift, error) {
	c, err := newCloner(ctx, src, nil, m, Options{Workers: workers})
	if err != nil {
		return nil, err
	}
	res, err := c.run()
	return res.Drift, err
}

// statDrift compares st (an lstat of the entry's path) with e. It returns
// a reason when the entry has drifted, or "" with hash set when everything
// but the mtime matches, so only the content can tell.
func statDrift(e *manifest.Entry, st *unix.Stat_t) (reason string, hash bool) {
	if st.Mode&unix.S_IFMT != fmtOf(e.Type) {
		return fmt.Sprintf("type %s, manifest says %s", dirwalk.TypeName(st.Mode), e.Type), false
	}
	if e.Type != manifest.Symlink && st.Mode&07777 != e.Mode {
		return fmt.Sprintf("mode %#o, manifest says %#o", st.Mode&07777, e.Mode), false
	}
	if st.Uid != e.UID || st.Gid != e.GID {
		return fmt.Sprintf("owner %d:%d, manifest says %d:%d", st.Uid, st.Gid, e.UID, e.GID), false
	}
	switch e.Type {
	case manifest.File:
		if st.Size != e.Size {
			return fmt.Sprintf("size %d, manifest says %d", st.Size, e.Size), false
		}
		return "", st.Mtim != slotfs.FixedMtime
	case manifest.Char, manifest.Block:
		if st.Rdev != e.Rdev {
			return fmt.Sprintf("device %#x, manifest says %#x", st.Rdev, e.Rdev), false
		}
	}
	return "", false
}

// fmtOf maps a manifest type to its S_IFMT bits.
func fmtOf(t manifest.Type) uint32 {
	switch t {
	case manifest.File:
		return unix.S_IFREG
	case manifest.Dir:
		return unix.S_IFDIR
	case manifest.Symlink:
		return unix.S_IFLNK
	case manifest.Char:
		return unix.S_IFCHR
	case manifest.Block:
		return unix.S_IFBLK
	case manifest.Fifo:
		return unix.S_IFIFO
	}
	return 0
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// contentDrift opens file name in dfd (st is its lstat) and compares its
// bytes (when hash) and tracked xattrs with e. It refuses a file that was
// replaced since st, so that what is checked is the inode that gets linked.
func contentDrift(ctx context.Context, dfd int, name string, st *unix.Stat_t, e *manifest.Entry, hash bool) (string, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Sprintf("open: %v", err), nil
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return "", err
	}
	if fst.Ino != st.Ino || fst.Dev != st.Dev {
		return "replaced while checking", nil
	}
	xs, err := manifest.ReadXattrsFd(fd)
	if err != nil {
		return fmt.Sprintf("read xattrs: %v", err), nil
	}
	if !slices.EqualFunc(xs, e.Xattrs, func(a, b manifest.Xattr) bool { return a.Name == b.Name && string(a.Value) == string(b.Value) }) {
		return fmt.Sprintf("xattrs %s, manifest says %s", xattrNames(xs), xattrNames(e.Xattrs)), nil
	}
	if !hash {
		return "", nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	h := sha256.New()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		k, err := f.Read(*bp)
		h.Write((*bp)[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Sprintf("read: %v", err), nil
		}
	}
	if d := digest.Sum(h); n != e.Size || d != e.SHA256 {
		return fmt.Sprintf("content changed (sha256 %.12s…, manifest says %.12s…)", d, e.SHA256), nil
	}
	return "", nil
}

// xattrNames summarises a set of xattrs for a drift reason.
func xattrNames(xs []manifest.Xattr) string {
	if len(xs) == 0 {
		return "none"
	}
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s=%x", x.Name, x.Value)
	}
	return s
}
