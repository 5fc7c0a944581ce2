// Package verify checks that a slot tree matches its manifest exactly. The
// security service runs it before it lets the boot pointer name a slot
// (DESIGN invariant 2), so it trusts nothing but the manifest: every entry's
// type, mode (setuid included), owner, size, SHA-256, symlink target, device
// number and tracked xattrs; hard-link groups; and that nothing else is in
// the tree (a leftover temp file or a planted extra binary fails too).
// Modification times are not checked: they are not part of a file's
// identity (DESIGN, Repository).
//
// The one exception to "trusts nothing": Options.Written lets the engine,
// checking the slot it has just written, skip re-reading the files whose
// bytes it hashed and checked as it wrote them (still checking everything
// else about them). The security service never sets it.
//
// Verification only reads. Paths are walked with openat2(RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV) and *at calls that never follow
// symlinks, so a tree that tries to point the verifier elsewhere fails.
package verify

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/dirwalk"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

// Options tunes a verification.
type Options struct {
	Workers  int                               // goroutines; 0 = GOMAXPROCS
	Progress func(doneBytes, totalBytes int64) // bytes hashed; called from one goroutine at a time
	// Written, when set, returns the digest the calling process computed
	// of a file's bytes as it wrote them, if it wrote that file (that
	// incarnation of the inode: see Generation). Such a file's bytes are
	// not read again; everything else about it is checked as usual. Only
	// the engine sets it, for the slot it has just written and nothing
	// else writes; the security service verifies with Written unset,
	// trusting nothing but the manifest.
	Written func(Inode) (digest.Digest, bool)
}

// Mismatch is one way the tree differs from the manifest.
type Mismatch struct{ Path, Reason string }

// Slot returns nil if the tree at root matches m exactly, or an error
// wrapping errdefs.ErrVerification that names the first bad path in
// manifest (bytewise) order and why. The path named does not depend on
// worker scheduling: work on paths after the first bad one found so far is
// skipped, work before it is always done.
func Slot(ctx context.Context, root *slotfs.Root, m *manifest.Manifest, o Options) error {
	ms, err := All(ctx, root, m, o, 1)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		return fmt.Errorf("verify %s: %s: %s: %w", root.Path(), ms[0].Path, ms[0].Reason, errdefs.ErrVerification)
	}
	return nil
}

// All returns up to max mismatches (the first ones in path order; max <= 0
// means 1000), for tools that report every problem. The error is for
// failures to run (cancellation, an invalid manifest), not for mismatches.
func All(ctx context.Context, root *slotfs.Root, m *manifest.Manifest, o Options, max int) ([]Mismatch, error) {
	if max <= 0 {
		max = 1000
	}
	v, err := newVerifier(ctx, root, m, o, max)
	if err != nil {
		return nil, err
	}
	return v.run()
}

type inode struct {
	dev, ino uint64
	nlink    uint64
}

type verifier struct {
	ctx   context.Context
	root  *slotfs.Root
	es    []manifest.Entry
	kids  [][]int32 // children by dir id; 0 is the root
	dirID []int32   // dir id of each Dir entry
	dev   uint64    // the slot's filesystem
	ino   []inode   // of each file entry seen; written once by its dir task
	o     Options
	col   collector

	pool *dirwalk.Pool[task]

	total    int64
	done     atomic.Int64
	progMu   sync.Mutex
	reported int64
}

// task is a directory to walk, or a large file to hash on its own (so one
// big file does not keep a whole directory on one worker).
type task struct {
	ent int32 // entry index; -1 is the root directory
	big bool
}

// bigFile is the size from which a file is hashed as its own task.
const bigFile = 512 << 10

func newVerifier(ctx context.Context, root *slotfs.Root, m *manifest.Manifest, o Options, max int) (*verifier, error) {
	tr, err := dirwalk.NewTree(m)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", root.Path(), err)
	}
	v := &verifier{ctx: ctx, root: root, es: m.Entries, o: o, col: collector{max: max},
		kids: tr.Kids, dirID: tr.DirID, ino: make([]inode, len(m.Entries))}
	nbig := 0
	for i := range v.es {
		if e := &v.es[i]; e.Type == manifest.File {
			v.total += e.Size
			if e.Size >= bigFile {
				nbig++
			}
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(root.FD(), &st); err != nil {
		return nil, fmt.Errorf("verify %s: %w", root.Path(), err)
	}
	v.dev = st.Dev
	v.pool = dirwalk.NewPool[task](len(v.kids) + nbig)
	return v, nil
}

func (v *verifier) run() ([]Mismatch, error) {
	v.pool.Queue(task{ent: -1})
	v.pool.Run(v.ctx, v.o.Workers, func() func(task) {
		buf := make([]byte, 1<<20)
		return func(t task) {
			if t.big {
				v.bigFile(t.ent, buf)
			} else {
				v.dir(t.ent, buf)
			}
		}
	})
	if err := v.ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: %w: %w", v.root.Path(), errdefs.ErrCancelled, err)
	}
	v.links()
	if v.o.Progress != nil {
		v.o.Progress(v.total, v.total)
	}
	return v.col.result(), nil
}

func (v *verifier) bad(path, format string, args ...any) {
	v.col.add(Mismatch{path, fmt.Sprintf(format, args...)})
}

func (v *verifier) queue(k int32, big bool) {
	v.pool.Queue(task{ent: k, big: big})
}

// progress counts n more hashed bytes and reports at most every MiB.
func (v *verifier) progress(n int64) {
	done := v.done.Add(n)
	if v.o.Progress == nil || done>>20 == (done-n)>>20 {
		return
	}
	v.progMu.Lock()
	defer v.progMu.Unlock()
	if done > v.reported {
		v.reported = done
		v.o.Progress(done, v.total)
	}
}

// links checks hard-link groups once every inode is known: each member
// shares its leader's inode, and no two paths outside one group share one.
func (v *verifier) links() {
	leaders := map[inode]int{} // inode -> first entry seen with it
	leaderOf := func(i int) string {
		if v.es[i].Link != "" {
			return v.es[i].Link
		}
		return v.es[i].Path
	}
	for i := range v.es {
		e, in := &v.es[i], v.ino[i]
		if e.Type != manifest.File || in.ino == 0 {
			continue
		}
		if e.Link != "" {
			if l := v.find(e.Link); l >= 0 && v.ino[l].ino != 0 && (v.ino[l].ino != in.ino || v.ino[l].dev != in.dev) {
				v.bad(e.Path, "not hard-linked to %s", e.Link)
				continue
			}
		}
		if in.nlink < 2 {
			continue
		}
		key := inode{dev: in.dev, ino: in.ino}
		if j, ok := leaders[key]; !ok {
			leaders[key] = i
		} else if leaderOf(j) != leaderOf(i) {
			v.bad(e.Path, "same inode as %s, which the manifest does not link it to", v.es[j].Path)
		}
	}
}

func (v *verifier) find(path string) int {
	i, ok := slices.BinarySearchFunc(v.es, path, func(e manifest.Entry, p string) int { return cmp.Compare(e.Path, p) })
	if !ok {
		return -1
	}
	return i
}

// collector keeps the first max mismatches in path order, and publishes
// the path after which nothing more is needed so workers can skip work.
type collector struct {
	max   int
	mu    sync.Mutex
	list  []Mismatch
	limit atomic.Pointer[string]
}

// needless reports whether a mismatch at path could not be among the first
// max: then checking path is wasted work.
func (c *collector) needless(path string) bool {
	l := c.limit.Load()
	return l != nil && path > *l
}

func (c *collector) add(m Mismatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.needless(m.Path) {
		return
	}
	c.list = append(c.list, m)
	if len(c.list) >= 2*c.max || c.limit.Load() == nil && len(c.list) >= c.max {
		c.trim()
	}
}

func (c *collector) trim() {
	// Stable: two reasons for one path keep the order they were found in
	// (entry checks before the link pass), which does not vary.
	slices.SortStableFunc(c.list, func(a, b Mismatch) int { return cmp.Compare(a.Path, b.Path) })
	if len(c.list) >= c.max {
		c.list = c.list[:c.max]
		l := c.list[c.max-1].Path
		c.limit.Store(&l)
	}
}

func (c *collector) result() []Mismatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trim()
	return slices.Clone(c.list)
}
