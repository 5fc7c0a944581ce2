package slotfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/manifest"
)

// FixedMtime is the modification time of every file this system deploys.
// Content identity is the digest, not the mtime (DESIGN: a hard link shares
// its inode's metadata, so a moving mtime would force copies); a constant
// also makes "file was written since deployment" visible to a stat.
var FixedMtime = unix.Timespec{Sec: 1}

// Mkdir creates directory rel with mode and owner (the parent must exist).
// An existing directory is re-moded and re-owned in place: directories are
// never shared between slots, so this cannot leak into the other slot.
func (r *Root) Mkdir(rel string, mode, uid, gid uint32) error {
	err := r.withParent(rel, func(dfd int, base string) error {
		if err := unix.Mkdirat(dfd, base, 0700); err != nil && !errors.Is(err, unix.EEXIST) {
			return &os.PathError{Op: "mkdir", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fd, err := r.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
		return &os.PathError{Op: "chown", Path: r.path + "/" + rel, Err: err}
	}
	if err := unix.Fchmod(fd, mode&07777); err != nil {
		return &os.PathError{Op: "chmod", Path: r.path + "/" + rel, Err: err}
	}
	return nil
}

// SetDirXattrs replaces the tracked xattrs of directory rel.
func (r *Root) SetDirXattrs(rel string, xs []manifest.Xattr) error {
	fd, err := r.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return SetXattrs(fd, xs)
}

// SetXattrs makes the tracked xattrs of fd exactly xs. Only those fd has
// are removed: a new file usually has none.
func SetXattrs(fd int, xs []manifest.Xattr) error {
	var buf [256]byte
	on := manifest.TrackedOnFd(fd, buf[:])
	for _, name := range manifest.TrackedXattrs {
		var val []byte
		found := false
		for _, x := range xs {
			if x.Name == name {
				val, found = x.Value, true
			}
		}
		if found {
			if err := unix.Fsetxattr(fd, name, val, 0); err != nil {
				return fmt.Errorf("setxattr %s: %w", name, err)
			}
		} else if !on.Has(name) {
			continue
		} else if err := unix.Fremovexattr(fd, name); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("removexattr %s: %w", name, err)
		}
	}
	return nil
}

// Symlink atomically makes rel a symlink to target (temp name + rename).
func (r *Root) Symlink(target, rel string, uid, gid uint32) error {
	return r.withParent(rel, func(dfd int, base string) error {
		tmp := tempName()
		if err := unix.Symlinkat(target, dfd, tmp); err != nil {
			return &os.PathError{Op: "symlink", Path: r.path + "/" + rel, Err: err}
		}
		if err := unix.Fchownat(dfd, tmp, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Unlinkat(dfd, tmp, 0)
			return &os.PathError{Op: "lchown", Path: r.path + "/" + rel, Err: err}
		}
		if err := unix.Renameat(dfd, tmp, dfd, base); err != nil {
			unix.Unlinkat(dfd, tmp, 0)
			return &os.PathError{Op: "rename", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
}

// Link hard-links src's file srcRel to rel in r. The new name must not exist.
func (r *Root) Link(src *Root, srcRel, rel string) error {
	sfd, sbase, err := src.ownParent(srcRel)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	return r.withParent(rel, func(dfd int, base string) error {
		if err := unix.Linkat(sfd, sbase, dfd, base, 0); err != nil {
			return &os.PathError{Op: "link", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
}

// Remove unlinks a non-directory, or removes an empty directory.
func (r *Root) Remove(rel string) error {
	return r.withParent(rel, func(dfd int, base string) error {
		err := unix.Unlinkat(dfd, base, 0)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
			err = unix.Unlinkat(dfd, base, unix.AT_REMOVEDIR)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return &os.PathError{Op: "remove", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
}

// RemoveAll removes rel and everything below it without following symlinks
// or crossing into another filesystem. A missing rel is not an error.
func (r *Root) RemoveAll(rel string) error {
	st, err := r.Lstat(rel)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		fd, err := r.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return err
		}
		err = removeChildren(fd, st.Dev)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("remove %s/%s: %w", r.path, rel, err)
		}
		r.Forget()
	}
	return r.Remove(rel)
}

func removeChildren(dfd int, dev uint64) error {
	names, err := readDirNames(dfd)
	if err != nil {
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if st.Dev != dev {
				return fmt.Errorf("%s is another filesystem", n)
			}
			cfd, err := unix.Openat(dfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = removeChildren(cfd, dev)
			unix.Close(cfd)
			if err != nil {
				return err
			}
			if err := unix.Unlinkat(dfd, n, unix.AT_REMOVEDIR); err != nil {
				return err
			}
			continue
		}
		if err := unix.Unlinkat(dfd, n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// ReadDir lists the names in directory rel ("" = root), unsorted.
func (r *Root) ReadDir(rel string) ([]string, error) {
	var fd int
	var err error
	if rel == "" {
		fd, err = unix.Openat(r.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		fd, err = r.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readDirNames(fd)
}

func readDirNames(fd int) ([]string, error) {
	f := os.NewFile(uintptr(dupFd(fd)), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func dupFd(fd int) int {
	n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return n
}

// CreateTemp creates a new empty file with a temporary name in directory
// dirRel (or in the scratch directory, see SetScratch). The caller writes
// it, sets metadata, syncs, and commits it with Commit (or removes it with
// Abort).
func (r *Root) CreateTemp(dirRel string) (*Temp, error) {
	// The temp owns a duplicate of the directory fd: a batch of temps may wait
	// for its commit while the shared cache evicts and closes entries.
	own := -1
	if err := r.withDir(dirRel, func(dfd int) error { own = dupFd(dfd); return nil }); err != nil {
		return nil, err
	}
	if own < 0 {
		return nil, fmt.Errorf("dup dir fd of %s/%s", r.path, dirRel)
	}
	in, where := own, r.path+"/"+dirRel
	if r.scratch >= 0 {
		if in = dupFd(r.scratch); in < 0 {
			unix.Close(own)
			return nil, fmt.Errorf("dup scratch dir fd for %s/%s", r.path, dirRel)
		}
		where = "scratch for " + where
	}
	name := tempName()
	fd, err := unix.Openat(in, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0600)
	if err != nil {
		unix.Close(own)
		if in != own {
			unix.Close(in)
		}
		return nil, &os.PathError{Op: "create", Path: where + "/" + name, Err: err}
	}
	return &Temp{File: os.NewFile(uintptr(fd), name), dfd: own, in: in, name: name}, nil
}

// Temp is a file being prepared for its destination directory.
type Temp struct {
	*os.File
	dfd  int // destination directory, owned
	in   int // directory holding name: dfd, or an owned scratch dir fd
	name string
}

// SetMeta applies owner, mode (chown first: it clears setuid bits), xattrs
// and the fixed mtime.
func (t *Temp) SetMeta(mode, uid, gid uint32, xs []manifest.Xattr) error {
	fd := int(t.Fd())
	if err := unix.Fchown(fd, int(uid), int(gid)); err != nil {
		return fmt.Errorf("chown %s: %w", t.name, err)
	}
	if err := unix.Fchmod(fd, mode&07777); err != nil {
		return fmt.Errorf("chmod %s: %w", t.name, err)
	}
	if err := SetXattrs(fd, xs); err != nil {
		return err
	}
	ts := []unix.Timespec{FixedMtime, FixedMtime}
	return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
}

// Commit renames the temp file to base in its directory, replacing what was
// there (a file or symlink; never writing into the old inode). The caller is
// responsible for having synced the data first (Sync, or a batch syncfs).
func (t *Temp) Commit(base string) error {
	defer t.closeDirs()
	defer t.File.Close()
	if err := unix.Renameat(t.in, t.name, t.dfd, base); err != nil {
		unix.Unlinkat(t.in, t.name, 0)
		return fmt.Errorf("rename into %s: %w", base, err)
	}
	return nil
}

// Abort closes and removes the temp file.
func (t *Temp) Abort() {
	t.File.Close()
	unix.Unlinkat(t.in, t.name, 0)
	t.closeDirs()
}

func (t *Temp) closeDirs() {
	if t.in != t.dfd {
		unix.Close(t.in)
	}
	unix.Close(t.dfd)
}

// LinkReplace makes rel another name of src's srcRel, replacing whatever
// rel was (link to a temp name, then rename over: no window without rel).
func (r *Root) LinkReplace(src *Root, srcRel, rel string) error {
	sfd, sbase, err := src.ownParent(srcRel)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	return r.withParent(rel, func(dfd int, base string) error {
		tmp := tempName()
		if err := unix.Linkat(sfd, sbase, dfd, tmp, 0); err != nil {
			return &os.PathError{Op: "link", Path: r.path + "/" + rel, Err: err}
		}
		if err := unix.Renameat(dfd, tmp, dfd, base); err != nil {
			unix.Unlinkat(dfd, tmp, 0)
			return &os.PathError{Op: "rename", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
}

// Mknod replaces rel with a device node or fifo (mode includes the type bits).
func (r *Root) Mknod(rel string, mode uint32, dev uint64, uid, gid uint32) error {
	return r.withParent(rel, func(dfd int, base string) error {
		tmp := tempName()
		if err := unix.Mknodat(dfd, tmp, mode, int(dev)); err != nil {
			return &os.PathError{Op: "mknod", Path: r.path + "/" + rel, Err: err}
		}
		if afterMknod != nil {
			afterMknod(dfd, tmp)
		}
		err := setNodeMeta(dfd, tmp, mode, uid, gid)
		if err == nil {
			err = unix.Renameat(dfd, tmp, dfd, base)
		}
		if err != nil {
			unix.Unlinkat(dfd, tmp, 0)
			return &os.PathError{Op: "mknod", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
}

// afterMknod is a test hook: it runs between a node's creation and its
// owner and mode, where a swap for a symlink must be caught.
var afterMknod func(dfd int, name string)

// setNodeMeta sets the owner and mode of the node just made at dfd/name
// without following a symlink: fchmodat(2) has no AT_SYMLINK_NOFOLLOW
// before Linux 6.6, so the name is opened once (O_PATH|O_NOFOLLOW), checked
// to be a node of the type made, and both changes go to that inode (the
// mode through its /proc/self/fd link, which names the inode itself).
func setNodeMeta(dfd int, name string, mode, uid, gid uint32) error {
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != mode&unix.S_IFMT {
		return fmt.Errorf("%s is no longer the node made (type %o): %w", name, st.Mode&unix.S_IFMT, unix.ELOOP)
	}
	if err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	// A node carries no xattrs (manifest.Entry.Check): drop the ACL it
	// inherited from its directory's default ACL.
	for _, name := range manifest.TrackedXattrs {
		if err := unix.Removexattr(self, name); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("removexattr %s: %w", name, err)
		}
	}
	return unix.Chmod(self, mode&07777)
}

// SyncDir fsyncs directory rel so that renames and links in it are durable.
func (r *Root) SyncDir(rel string) error {
	return r.withDir(rel, unix.Fsync)
}

// SyncFS flushes the whole filesystem holding the slot (one syncfs instead
// of thousands of fsyncs when a batch of files is committed together).
func (r *Root) SyncFS() error { return unix.Syncfs(r.fd) }

func tempName() string {
	var b [8]byte
	rand.Read(b[:])
	return TempPrefix + hex.EncodeToString(b[:])
}

// ownParent opens rel's parent directory as an fd the caller owns and closes
// (for the source side of a link: never nested inside another root's lock).
func (r *Root) ownParent(rel string) (int, string, error) {
	if err := manifest.CheckPath(rel); err != nil {
		return -1, "", err
	}
	dir, base := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	if dir == "" {
		return dupFd(r.fd), base, nil
	}
	fd, err := r.openat2(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	return fd, base, err
}
