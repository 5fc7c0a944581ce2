// Package clone makes the inactive slot a hard-link clone of the active one,
// the first step of an upgrade (OLPC: "a hard-linked clone of the current OS
// bits"), and finds the files of the active slot that drifted from its
// manifest.
//
// Clone never writes an inode that the active slot shares. In the clone it
// only calls linkat, mkdirat, symlinkat, mknodat and unlinkat, and changes
// metadata (fchown, fchmod, xattrs) only on directories, which are never
// shared, and on symlinks and nodes it has just created itself. It never
// chmods, chowns, truncates or writes a linked file: a file whose metadata
// is wrong is unlinked and left for the caller to fetch as a new inode
// (DESIGN invariant 1; OLPC's clone leaked an in-place change into the other
// slot). A file of the active slot that no longer matches its manifest (the
// running system wrote into it) is not linked either: linking it would make
// the new slot fail verification, or worse, pass with the drifted bytes if
// nothing verified it.
//
// Every path is opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_XDEV) and every final component is handled with an *at call
// that does not follow symlinks, so a symlink planted in the clone where the
// manifest has a directory is removed, never followed.
package clone

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/dirwalk"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

// Options tunes Clone.
type Options struct {
	Workers  int                   // goroutines working on distinct directories; 0 = GOMAXPROCS
	Progress func(done, total int) // entries processed; called from one goroutine at a time
}

// Result counts what Clone did. Every manifest entry is counted exactly
// once in Linked, Kept, Dirs, Symlinks, Other or Drift.
type Result struct {
	Linked   int // files hard-linked now
	Kept     int // entries already right in dst and reused (a file that is src's inode, a symlink, a dir, a node)
	Removed  int // names removed from dst (each one inside a removed directory counts)
	Dirs     int // directories created now
	Symlinks int // symlinks created now
	Other    int // device nodes and fifos created now
	// Drift lists files of the active slot that no longer match its
	// manifest. They are NOT in dst: the caller fetches them.
	Drift []Drift
}

// Clone makes dst a hard-link clone of src, described by m (src's
// manifest). Directories are made in dst with m's mode, owner and xattrs;
// files are hard-linked from src after a drift check (see DetectDrift);
// symlinks, device nodes and fifos are created from m. src's directories,
// symlinks and nodes are not consulted: m says what they are.
//
// dst may hold an older or half-finished tree. Whatever already matches is
// kept (a file that is the same inode as src's file at that path, a
// directory, a symlink with the right target and owner, a matching node);
// everything else (other inodes, wrong types, paths not in m, leftover
// slotfs.TempPrefix files) is removed. A directory that was just created
// is not listed, so a fresh clone costs about one fstatat and one linkat per
// file. Directories are processed in parallel by Options.Workers goroutines;
// a directory is always created before anything is linked into it.
//
// The clone is not synced: the caller syncs the filesystem once (slotfs
// Root.SyncFS) before recording that the clone is complete.
func Clone(ctx context.Context, src, dst *slotfs.Root, m *manifest.Manifest, o Options) (Result, error) {
	c, err := newCloner(ctx, src, dst, m, o)
	if err != nil {
		return Result{}, err
	}
	return c.run()
}

// cloner is one Clone or DetectDrift run (dst == nil: detect only).
type cloner struct {
	ctx      context.Context
	cancel   context.CancelFunc
	src, dst *slotfs.Root
	es       []manifest.Entry
	kids     [][]int32 // children (entry indexes) by dir id; id 0 is the root
	dirID    []int32   // dir id of each Dir entry
	dstDev   uint64
	euid     uint32
	egid     uint32
	o        Options

	pool *dirwalk.Pool[task]

	mu   sync.Mutex // guards the fields below
	res  Result
	err  error
	done int
}

// task is one directory to process: ent is its entry index (-1: root);
// fresh means Clone just created it in dst, so it is known to be empty.
type task struct {
	ent   int32
	fresh bool
}

func newCloner(ctx context.Context, src, dst *slotfs.Root, m *manifest.Manifest, o Options) (*cloner, error) {
	tr, err := dirwalk.NewTree(m)
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	c := &cloner{src: src, dst: dst, es: m.Entries, o: o, kids: tr.Kids, dirID: tr.DirID,
		euid: uint32(os.Geteuid()), egid: uint32(os.Getegid())}
	if dst != nil {
		var st unix.Stat_t
		if err := unix.Fstat(dst.FD(), &st); err != nil {
			return nil, fmt.Errorf("clone: stat %s: %w", dst.Path(), err)
		}
		c.dstDev = st.Dev
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c, nil
}

func (c *cloner) run() (Result, error) {
	defer c.cancel()
	c.pool = dirwalk.NewPool[task](len(c.kids))
	c.pool.Queue(task{ent: -1})
	c.pool.Run(c.ctx, c.o.Workers, func() func(task) {
		return func(t task) {
			if err := c.dir(t); err != nil {
				c.fail(err)
			}
		}
	})
	res := c.res
	slices.SortFunc(res.Drift, func(a, b Drift) int { return strings.Compare(a.Path, b.Path) })
	op := "clone " + c.src.Path() + " to "
	if c.dst == nil {
		op = "drift check " + c.src.Path()
	} else {
		op += c.dst.Path()
	}
	if c.err != nil {
		return res, fmt.Errorf("%s: %w", op, c.err)
	}
	if err := c.ctx.Err(); err != nil { // only the caller cancels without an error
		return res, fmt.Errorf("%s: %w: %w", op, errdefs.ErrCancelled, err)
	}
	return res, nil
}

func (c *cloner) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.cancel()
}

// dir processes the children of one directory: the drift check and link
// of each file, and in dst the removal of what does not belong.
func (c *cloner) dir(t task) error {
	rel, id := "", int32(0)
	if t.ent >= 0 {
		rel, id = c.es[t.ent].Path, c.dirID[t.ent]
	}
	kids := c.kids[id]
	// A directory of src that cannot be opened makes all its files drift
	// with one reason; its subdirectories are still made in dst.
	srcWhy := ""
	sfd, err := dirwalk.Open(c.src.FD(), rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		srcWhy = "missing"
		if err != unix.ENOENT {
			srcWhy = fmt.Sprintf("directory %s: %v", rel, err)
		}
	} else {
		defer unix.Close(sfd)
		if c.dst == nil && t.ent >= 0 && len(c.es[t.ent].Xattrs) > 0 {
			if why := dirXattrDrift(sfd, &c.es[t.ent]); why != "" {
				c.addDrift(Drift{rel, why})
			}
		}
	}
	dfd := -1
	var have []unix.Stat_t // lstat of each kid present in dst (Mode 0: absent)
	var r Result
	if c.dst != nil {
		if dfd, err = dirwalk.Open(c.dst.FD(), rel, unix.O_RDONLY|unix.O_DIRECTORY); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		defer unix.Close(dfd)
		if !t.fresh {
			if have, err = c.sweep(dfd, rel, kids, &r); err != nil {
				return err
			}
		}
	}
	for i, k := range kids {
		if i%64 == 0 && c.ctx.Err() != nil {
			return nil
		}
		e := &c.es[k]
		name := e.Path[len(rel):]
		if rel != "" {
			name = name[1:]
		}
		var ex *unix.Stat_t
		if have != nil && have[i].Mode != 0 {
			ex = &have[i]
		}
		if err := c.entry(sfd, dfd, srcWhy, name, e, ex, int32(k), &r); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Linked += r.Linked
	c.res.Kept += r.Kept
	c.res.Removed += r.Removed
	c.res.Dirs += r.Dirs
	c.res.Symlinks += r.Symlinks
	c.res.Other += r.Other
	c.res.Drift = append(c.res.Drift, r.Drift...)
	c.done += len(kids)
	if c.o.Progress != nil {
		c.o.Progress(c.done, len(c.es))
	}
	return nil
}

// sweep lists dst's directory dfd, removes every name that is not one of
// kids, and returns the lstat of those that are (indexed like kids).
func (c *cloner) sweep(dfd int, rel string, kids []int32, r *Result) ([]unix.Stat_t, error) {
	names, err := dirwalk.ReadNames(dfd)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", rel, err)
	}
	have := make([]unix.Stat_t, len(kids))
	skip := len(rel) + 1
	if rel == "" {
		skip = 0
	}
	i := 0
	for _, n := range names {
		for i < len(kids) && c.es[kids[i]].Path[skip:] < n {
			i++
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, fmt.Errorf("lstat %s/%s: %w", rel, n, err)
		}
		if i < len(kids) && c.es[kids[i]].Path[skip:] == n {
			have[i] = st
			continue
		}
		k, err := removeAt(dfd, n, &st, c.dstDev)
		r.Removed += k
		if err != nil {
			return nil, fmt.Errorf("remove %s/%w", rel, err)
		}
	}
	return have, nil
}

func (c *cloner) addDrift(d Drift) {
	c.mu.Lock()
	c.res.Drift = append(c.res.Drift, d)
	c.mu.Unlock()
}

// queue schedules directory entry k; fresh means it is empty in dst.
func (c *cloner) queue(k int32, fresh bool) {
	c.pool.Queue(task{ent: k, fresh: fresh})
}
