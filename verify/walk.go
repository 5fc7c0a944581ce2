package verify

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/dirwalk"
	"laptop.org/upgrade/manifest"
)

// open opens rel ("" is the root) under the slot root without following
// any symlink or leaving the filesystem.
func (v *verifier) open(rel string, flags int) (int, error) {
	return dirwalk.Open(v.root.FD(), rel, flags)
}

// dir walks one directory: names in the tree but not in m, entries of m
// missing from the tree, and the check of every child.
func (v *verifier) dir(ent int32, buf []byte) {
	rel, id := "", int32(0)
	if ent >= 0 {
		rel, id = v.es[ent].Path, v.dirID[ent]
	}
	fd, err := v.open(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		v.bad(rel, "open: %v", err)
		return
	}
	defer unix.Close(fd)
	if ent >= 0 {
		v.xattrs(fd, &v.es[ent], buf)
	}
	names, err := dirwalk.ReadNames(fd)
	if err != nil {
		v.bad(rel, "list: %v", err)
		return
	}
	prefix := rel + "/"
	if rel == "" {
		prefix = ""
	}
	kids := v.kids[id]
	i := 0
	for _, n := range names {
		for ; i < len(kids) && v.es[kids[i]].Path[len(prefix):] < n; i++ {
			v.bad(v.es[kids[i]].Path, "missing")
		}
		if i < len(kids) && v.es[kids[i]].Path[len(prefix):] == n {
			if v.ctx.Err() != nil {
				return
			}
			v.check(fd, n, kids[i], buf)
			i++
			continue
		}
		if p := prefix + n; !v.col.needless(p) {
			var st unix.Stat_t
			what := "entry"
			if unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				what = dirwalk.TypeName(st.Mode)
			}
			v.bad(p, "%s not in the manifest", what)
		}
	}
	for ; i < len(kids); i++ {
		v.bad(v.es[kids[i]].Path, "missing")
	}
}

// check compares child name of directory fd with entry k.
func (v *verifier) check(fd int, name string, k int32, buf []byte) {
	e := &v.es[k]
	if v.col.needless(e.Path) {
		return
	}
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		v.bad(e.Path, "lstat: %v", err)
		return
	}
	if why := meta(e, &st); why != "" {
		v.bad(e.Path, "%s", why)
		if e.Type == manifest.Dir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			v.queue(k, false) // still report what is below it
		}
		return
	}
	switch e.Type {
	case manifest.Dir:
		if st.Dev != v.dev {
			v.bad(e.Path, "another filesystem is mounted here")
			return
		}
		v.queue(k, false)
	case manifest.Symlink:
		t, err := dirwalk.ReadlinkAt(fd, name)
		if err != nil {
			v.bad(e.Path, "readlink: %v", err)
		} else if t != e.Target {
			v.bad(e.Path, "target %q, manifest says %q", t, e.Target)
		}
	case manifest.File:
		v.ino[k] = inode{dev: st.Dev, ino: st.Ino, nlink: uint64(st.Nlink)}
		if e.Size >= bigFile {
			v.queue(k, true)
			return
		}
		ffd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
		if err == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
			ffd, err = unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			v.bad(e.Path, "open: %v", err)
			return
		}
		v.content(ffd, k, buf)
		unix.Close(ffd)
	}
}

// bigFile hashes a large file as its own task.
func (v *verifier) bigFile(k int32, buf []byte) {
	e := &v.es[k]
	if v.col.needless(e.Path) {
		return
	}
	fd, err := v.open(e.Path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		fd, err = v.open(e.Path, unix.O_RDONLY|unix.O_NOFOLLOW)
	}
	if err != nil {
		v.bad(e.Path, "open: %v", err)
		return
	}
	defer unix.Close(fd)
	unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL)
	v.content(fd, k, buf)
}

// content checks the open file fd against entry k: the same inode that was
// stat-ed (so stat and hash describe one file), its xattrs and its bytes.
func (v *verifier) content(fd int, k int32, buf []byte) {
	e := &v.es[k]
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		v.bad(e.Path, "fstat: %v", err)
		return
	}
	if st.Ino != v.ino[k].ino || st.Dev != v.ino[k].dev {
		v.bad(e.Path, "replaced during verification")
		return
	}
	if !v.xattrs(fd, e, buf) {
		return
	}
	if st.Size == e.Size && v.written(fd, &st, e.SHA256) {
		v.progress(e.Size)
		return
	}
	h := sha256.New()
	var n int64
	for {
		if v.ctx.Err() != nil {
			return
		}
		r, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			v.bad(e.Path, "read: %v", err)
			return
		}
		if r == 0 {
			break
		}
		h.Write(buf[:r])
		n += int64(r)
		v.progress(int64(r))
	}
	if n != e.Size {
		v.bad(e.Path, "size %d while reading, manifest says %d", n, e.Size)
	} else if d := digest.Sum(h); d != e.SHA256 {
		v.bad(e.Path, "content sha256 %s, manifest says %s", d, e.SHA256)
	}
}

// xattrs compares the tracked xattrs of fd with e's; false if they differ.
// buf is the worker's buffer (at least 4 KiB, as manifest.ReadXattrsFd
// reads): reading into it allocates nothing for the common file without
// any.
func (v *verifier) xattrs(fd int, e *manifest.Entry, buf []byte) bool {
	on := manifest.TrackedOnFd(fd, buf[:4096])
	for _, name := range manifest.TrackedXattrs {
		n, err := 0, error(unix.ENODATA)
		if on.Has(name) {
			n, err = unix.Fgetxattr(fd, name, buf[:4096])
		}
		has := err == nil
		if err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			v.bad(e.Path, "read xattrs: xattr %s: %v", name, err)
			return false
		}
		want := find(e.Xattrs, name)
		switch {
		case !has && want == nil:
		case !has:
			v.bad(e.Path, "xattr %s missing", name)
			return false
		case want == nil:
			v.bad(e.Path, "xattr %s=%x not in the manifest", name, buf[:n])
			return false
		case string(buf[:n]) != string(want.Value):
			v.bad(e.Path, "xattr %s=%x, manifest says %x", name, buf[:n], want.Value)
			return false
		}
	}
	return true
}

func find(xs []manifest.Xattr, name string) *manifest.Xattr {
	for i := range xs {
		if xs[i].Name == name {
			return &xs[i]
		}
	}
	return nil
}

// meta compares what a stat shows with e; "" if it all matches.
func meta(e *manifest.Entry, st *unix.Stat_t) string {
	var want uint32
	switch e.Type {
	case manifest.File:
		want = unix.S_IFREG
	case manifest.Dir:
		want = unix.S_IFDIR
	case manifest.Symlink:
		want = unix.S_IFLNK
	case manifest.Char:
		want = unix.S_IFCHR
	case manifest.Block:
		want = unix.S_IFBLK
	case manifest.Fifo:
		want = unix.S_IFIFO
	}
	if st.Mode&unix.S_IFMT != want {
		return fmt.Sprintf("type %s, manifest says %s", dirwalk.TypeName(st.Mode), e.Type)
	}
	var why []string
	if e.Type != manifest.Symlink && st.Mode&07777 != e.Mode {
		why = append(why, fmt.Sprintf("mode %#o, manifest says %#o", st.Mode&07777, e.Mode))
	}
	if st.Uid != e.UID || st.Gid != e.GID {
		why = append(why, fmt.Sprintf("owner %d:%d, manifest says %d:%d", st.Uid, st.Gid, e.UID, e.GID))
	}
	if e.Type == manifest.File && st.Size != e.Size {
		why = append(why, fmt.Sprintf("size %d, manifest says %d", st.Size, e.Size))
	}
	if (e.Type == manifest.Char || e.Type == manifest.Block) && st.Rdev != e.Rdev {
		why = append(why, fmt.Sprintf("device %#x, manifest says %#x", st.Rdev, e.Rdev))
	}
	return strings.Join(why, "; ")
}
