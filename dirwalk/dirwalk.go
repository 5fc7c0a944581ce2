// Package dirwalk is the walk of a slot that clone and verify share: the
// slot's manifest indexed by directory, one task per directory on a pool of
// workers, and every open confined to the slot. It only reads; what a task
// does with a directory is its caller's.
package dirwalk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
)

// Tree is a manifest's entries indexed by directory.
type Tree struct {
	Kids  [][]int32 // children (entry indexes) by dir id; id 0 is the root
	DirID []int32   // dir id of each Dir entry
}

// NewTree validates m, which guarantees what a walk relies on (sorted
// unique paths, so names merge with sorted listings; safe names; parents
// that are earlier directories; link members that follow a file leader),
// and indexes its entries by directory.
func NewTree(m *manifest.Manifest) (*Tree, error) {
	pol := manifest.Policy{AllowSetuid: true, AllowDevices: true, MaxEntries: len(m.Entries) + 1}
	if err := m.Validate(pol); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	t := &Tree{Kids: [][]int32{nil}, DirID: make([]int32, len(m.Entries))}
	ids := map[string]int32{"": 0}
	for i := range m.Entries {
		e := &m.Entries[i]
		pid := ids[manifest.Parent(e.Path)] // present: Validate checked
		t.Kids[pid] = append(t.Kids[pid], int32(i))
		if e.Type == manifest.Dir {
			ids[e.Path] = int32(len(t.Kids))
			t.DirID[i] = int32(len(t.Kids))
			t.Kids = append(t.Kids, nil)
		}
	}
	return t, nil
}

// Pool runs tasks on a fixed set of workers until none is pending; a task
// may queue more.
type Pool[T any] struct {
	tasks   chan T
	pending sync.WaitGroup
}

// NewPool makes a pool for at most capacity tasks in all (each directory is
// queued once, so queueing never blocks a worker).
func NewPool[T any](capacity int) *Pool[T] {
	return &Pool[T]{tasks: make(chan T, capacity)}
}

// Queue adds t; from a task, or before Run.
func (p *Pool[T]) Queue(t T) {
	p.pending.Add(1)
	p.tasks <- t
}

// Run starts workers goroutines (all cores when workers <= 0), each with
// its own function from newWorker (which may hold a buffer), and returns
// when every queued task is done. Once ctx is done, tasks are drained
// without running.
func (p *Pool[T]) Run(ctx context.Context, workers int, newWorker func() func(T)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			do := newWorker()
			for t := range p.tasks {
				if ctx.Err() == nil {
					do(t)
				}
				p.pending.Done()
			}
		})
	}
	p.pending.Wait()
	close(p.tasks)
	wg.Wait()
}

// resolve confines every path walk to the slot, like package slotfs: a
// directory swapped for a symlink (or a mount) fails instead of leading out.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// Open opens rel ("" is the root) of the slot whose root fd is rootFD,
// without following any symlink or leaving the filesystem. Walkers open
// their own fds rather than use slotfs.Root's cache, which closes every fd
// when it fills up, under the feet of concurrent users.
func Open(rootFD int, rel string, flags int) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(rootFD, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrUnsafePath)
		}
		return fd, err
	}
}

// ReadNames lists directory fd, sorted bytewise (the manifest's order, so
// the listing merges with a directory's children in one pass).
func ReadNames(fd int) ([]string, error) {
	d, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(d)
	f := os.NewFile(uintptr(d), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// TypeName describes a stat's file type the way manifest.Type does.
func TypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %o", mode&unix.S_IFMT)
}

// ReadlinkAt reads the target of symlink name in dfd.
func ReadlinkAt(dfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}
