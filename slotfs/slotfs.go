// Package slotfs performs file operations confined to one slot directory.
//
// Every path is resolved with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) from the slot's root fd, and the
// final component is acted on with an *at call that does not follow symlinks.
// A hostile manifest, or a directory swapped for a symlink between plan and
// apply, therefore fails with an error instead of writing outside the slot.
// Nothing here writes into an existing inode: content and metadata changes go
// to a new file that is renamed into place (see package apply).
package slotfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
)

// TempPrefix marks temporary names this package creates; a crash can leave
// them behind, and apply removes them.
const TempPrefix = ".upgrade-tmp-"

const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// Root is an open slot directory. Safe for concurrent use.
type Root struct {
	path string
	fd   int

	// inUse is held for reading while a cached fd is in a syscall, and for
	// writing while cached fds are closed: an fd is never closed (and its
	// number reused by another open) under a concurrent user.
	inUse sync.RWMutex
	mu    sync.Mutex
	dirs  map[string]int // parent directory fd cache

	// scratch, when >= 0, is where CreateTemp makes new files (see
	// SetScratch); owned by r.
	scratch int
}

// Open opens dir (which must be a real directory, not a symlink) as a root.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open slot %s: %w", dir, wrapErrno(err))
	}
	return &Root{path: dir, fd: fd, dirs: map[string]int{}, scratch: -1}, nil
}

// Path is the directory this root was opened at.
func (r *Root) Path() string { return r.path }

// FD is the root directory's fd (owned by r).
func (r *Root) FD() int { return r.fd }

// Close releases the root and every cached directory.
func (r *Root) Close() error {
	r.Forget()
	if r.scratch >= 0 {
		unix.Close(r.scratch)
	}
	return unix.Close(r.fd)
}

// SetScratch makes CreateTemp create its files in dir, a directory outside
// the slot on the same mount, and Commit rename them across into the slot.
// Then the process never opens a file of the slot for writing: under the
// daemon's Landlock confinement (package confine) it may not, since the
// slot shares inodes with the running one through the clone's hard links.
// Call before the root is used by other goroutines.
func (r *Root) SetScratch(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open scratch directory %s: %w", dir, wrapErrno(err))
	}
	if r.scratch >= 0 {
		unix.Close(r.scratch)
	}
	r.scratch = fd
	return nil
}

// Forget closes cached directory fds (after directories were removed or
// replaced, a cached fd would point at the old inode).
func (r *Root) Forget() {
	r.inUse.Lock()
	defer r.inUse.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range r.dirs {
		unix.Close(fd)
	}
	clear(r.dirs)
}

// withDir runs f with an fd for the directory rel ("" is the root). The fd
// is valid only during f.
func (r *Root) withDir(rel string, f func(fd int) error) error {
	if rel == "" {
		return f(r.fd)
	}
	r.inUse.RLock()
	defer r.inUse.RUnlock()
	r.mu.Lock()
	fd, ok := r.dirs[rel]
	r.mu.Unlock()
	if ok {
		return f(fd)
	}
	fd, err := r.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if _, dup := r.dirs[rel]; dup || len(r.dirs) >= maxCached {
		r.mu.Unlock()
		defer unix.Close(fd) // not cached: ours alone
		return f(fd)
	}
	r.dirs[rel] = fd
	r.mu.Unlock()
	return f(fd)
}

// maxCached bounds open directory fds; past it, fds are opened per call.
const maxCached = 256

func (r *Root) openat2(rel string, flags int) (int, error) {
	if err := manifest.CheckPath(rel); err != nil {
		return -1, err
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat2", Path: r.path + "/" + rel, Err: wrapErrno(err)}
		}
		return fd, nil
	}
}

// withParent runs f with the fd of rel's parent directory and rel's base name.
func (r *Root) withParent(rel string, f func(dfd int, base string) error) error {
	if err := manifest.CheckPath(rel); err != nil {
		return err
	}
	dir, base := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, base = rel[:i], rel[i+1:]
	}
	return r.withDir(dir, func(fd int) error { return f(fd, base) })
}

// Lstat stats rel without following a final symlink.
func (r *Root) Lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := r.withParent(rel, func(dfd int, base string) error {
		if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
	return st, err
}

// OpenFile opens the regular file rel for reading (a symlink anywhere fails).
func (r *Root) OpenFile(rel string) (*os.File, error) {
	fd, err := r.openat2(rel, unix.O_RDONLY|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), r.path+"/"+rel), nil
}

// Readlink reads the target of the symlink rel.
func (r *Root) Readlink(rel string) (string, error) {
	buf := make([]byte, manifest.MaxPath+1)
	n := 0
	err := r.withParent(rel, func(dfd int, base string) (err error) {
		if n, err = unix.Readlinkat(dfd, base, buf); err != nil {
			return &os.PathError{Op: "readlink", Path: r.path + "/" + rel, Err: err}
		}
		return nil
	})
	return string(buf[:n]), err
}

// Xattrs reads the tracked extended attributes of rel (a file or directory).
func (r *Root) Xattrs(rel string) ([]manifest.Xattr, error) {
	fd, err := r.openat2(rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return manifest.ReadXattrsFd(fd)
}

// Exists reports whether rel exists (any type).
func (r *Root) Exists(rel string) bool {
	_, err := r.Lstat(rel)
	return err == nil
}

func wrapErrno(err error) error {
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%v: %w", err, errdefs.ErrUnsafePath)
	}
	return err
}
