package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

// applier rewrites the inactive slot b to the target manifest. It never
// writes an existing inode: new content and new metadata go to a temp file
// that is renamed into place; the active slot a is only read and linked from.
type applier struct {
	a, b     *slotfs.Root // a may be nil (provisioning an empty machine)
	t        *Target
	p        *Plan
	staging  string
	resume   bool // b may hold results of an earlier run: check before redoing
	workers  int
	progress func(done, total int)
	done     atomic.Int64
}

func (ap *applier) run(ctx context.Context) error {
	if err := ap.structure(ctx); err != nil {
		return fmt.Errorf("apply structure: %w", err)
	}
	if err := ap.files(ctx); err != nil {
		return fmt.Errorf("apply files: %w", err)
	}
	if err := ap.links(); err != nil {
		return fmt.Errorf("apply hard links: %w", err)
	}
	if err := ap.removeExtras(ctx, ""); err != nil {
		return fmt.Errorf("apply removals: %w", err)
	}
	if err := ap.b.SyncFS(); err != nil {
		return fmt.Errorf("apply sync: %w", err)
	}
	return nil
}

func isType(st unix.Stat_t, t uint32) bool { return st.Mode&unix.S_IFMT == t }

// structure makes directories, symlinks and special files, and clears type
// conflicts (a file where a directory goes and vice versa), parents first.
func (ap *applier) structure(ctx context.Context) error {
	b := ap.b
	for i := range ap.t.Manifest.Entries {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		e := &ap.t.Manifest.Entries[i]
		st, err := b.Lstat(e.Path)
		exists := err == nil
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		switch e.Type {
		case manifest.Dir:
			if exists && !isType(st, unix.S_IFDIR) {
				if err := b.RemoveAll(e.Path); err != nil {
					return err
				}
				exists = false
			}
			if !exists || st.Mode&07777 != e.Mode || st.Uid != e.UID || st.Gid != e.GID {
				if err := b.Mkdir(e.Path, e.Mode, e.UID, e.GID); err != nil {
					return err
				}
			}
			if len(e.Xattrs) > 0 || exists {
				if err := b.SetDirXattrs(e.Path, e.Xattrs); err != nil {
					return err
				}
			}
		case manifest.Symlink:
			if exists && isType(st, unix.S_IFDIR) {
				if err := b.RemoveAll(e.Path); err != nil {
					return err
				}
				exists = false
			}
			if exists && isType(st, unix.S_IFLNK) && st.Uid == e.UID && st.Gid == e.GID {
				if t, err := b.Readlink(e.Path); err == nil && t == e.Target {
					continue
				}
			}
			if err := b.Symlink(e.Target, e.Path, e.UID, e.GID); err != nil {
				return err
			}
		case manifest.File:
			if exists && isType(st, unix.S_IFDIR) {
				if err := b.RemoveAll(e.Path); err != nil {
					return err
				}
			}
		default: // devices and fifos
			if exists && isType(st, unix.S_IFDIR) {
				if err := b.RemoveAll(e.Path); err != nil {
					return err
				}
			}
			typ := map[manifest.Type]uint32{manifest.Char: unix.S_IFCHR, manifest.Block: unix.S_IFBLK, manifest.Fifo: unix.S_IFIFO}[e.Type]
			if exists && isType(st, typ) && st.Rdev == e.Rdev && st.Mode&07777 == e.Mode && st.Uid == e.UID && st.Gid == e.GID {
				continue
			}
			if err := b.Mknod(e.Path, typ|e.Mode, e.Rdev, e.UID, e.GID); err != nil {
				return err
			}
		}
	}
	return nil
}

// files places every file's content, on all workers; finished temp files
// are committed in batches after one syncfs.
func (ap *applier) files(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *Action)
	ready := make(chan pending, 64)
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for w := 0; w < ap.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				if ctx.Err() != nil {
					continue
				}
				pend, err := ap.place(a)
				if err != nil {
					fail(fmt.Errorf("%s (%s): %w", a.Entry.Path, a.Src, err))
					continue
				}
				if pend.tmp != nil {
					ready <- pend
				} else {
					ap.tick()
				}
			}
		}()
	}
	commitDone := make(chan error, 1)
	go func() { commitDone <- ap.committer(ready) }()
	for i := range ap.p.Actions {
		select {
		case work <- &ap.p.Actions[i]:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	close(ready)
	if err := <-commitDone; err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func (ap *applier) tick() {
	n := ap.done.Add(1)
	if ap.progress != nil {
		ap.progress(int(n), len(ap.p.Actions))
	}
}

type pending struct {
	tmp  *slotfs.Temp
	base string
	size int64
}

// committer makes a batch durable with one syncfs, then renames it into
// place: every rename follows the sync of its data. Directory entries are
// made durable by the final syncfs of run.
func (ap *applier) committer(ready <-chan pending) error {
	var batch []pending
	var bytes int64
	var err error
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err == nil {
			err = ap.b.SyncFS()
		}
		for _, p := range batch {
			if err == nil {
				if cerr := p.tmp.Commit(p.base); cerr != nil {
					err = cerr
				}
				ap.tick()
			} else {
				p.tmp.Abort()
			}
		}
		batch, bytes = batch[:0], 0
	}
	for p := range ready {
		batch = append(batch, p)
		bytes += p.size
		if len(batch) >= 256 || bytes >= 64<<20 {
			flush()
		}
	}
	flush()
	return err
}

// place puts one file into b, or returns a temp file to commit.
func (ap *applier) place(a *Action) (pending, error) {
	e := a.Entry
	switch a.Src {
	case Keep:
		if ap.a != nil && ap.sameInode(e.Path, e.Path) {
			return pending{}, nil
		}
		return pending{}, ap.b.LinkReplace(ap.a, e.Path, e.Path)
	case Link:
		if ap.sameInode(a.From, e.Path) {
			return pending{}, nil
		}
		return pending{}, ap.b.LinkReplace(ap.a, a.From, e.Path)
	}
	if ap.resume && ap.alreadyThere(e) {
		return pending{}, nil
	}
	dir := manifest.Parent(e.Path)
	tmp, err := ap.b.CreateTemp(dir)
	if err != nil {
		return pending{}, err
	}
	h := digest.NewWriter(tmp)
	switch a.Src {
	case Copy:
		err = ap.copyFrom(a.From, h)
	case Delta:
		err = ap.applyDelta(a, h)
	case Object:
		err = ap.decompress(a, h)
	}
	if err == nil && (h.N != e.Size || h.Digest() != e.SHA256) {
		err = fmt.Errorf("result has %d bytes %s, manifest says %d bytes %s: %w", h.N, h.Digest(), e.Size, e.SHA256, errdefs.ErrCorrupt)
	}
	if err == nil {
		err = tmp.SetMeta(e.Mode, e.UID, e.GID, e.Xattrs)
	}
	if err != nil {
		tmp.Abort()
		return pending{}, err
	}
	base := e.Path[len(dir):]
	if dir != "" {
		base = base[1:]
	}
	return pending{tmp: tmp, base: base, size: e.Size}, nil
}

func (ap *applier) sameInode(aPath, bPath string) bool {
	if ap.a == nil {
		return false
	}
	sa, err1 := ap.a.Lstat(aPath)
	sb, err2 := ap.b.Lstat(bPath)
	return err1 == nil && err2 == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// alreadyThere recognises a file an earlier, interrupted run placed: the
// right metadata, not the active slot's inode at that path, and the right
// content (hashed: after a power cut a renamed file may hold garbage).
func (ap *applier) alreadyThere(e *manifest.Entry) bool {
	st, err := ap.b.Lstat(e.Path)
	if err != nil || !isType(st, unix.S_IFREG) || st.Size != e.Size || st.Mode&07777 != e.Mode || st.Uid != e.UID || st.Gid != e.GID {
		return false
	}
	if ap.a != nil {
		if sa, err := ap.a.Lstat(e.Path); err == nil && sa.Ino == st.Ino && sa.Dev == st.Dev {
			return false
		}
	}
	f, err := ap.b.OpenFile(e.Path)
	if err != nil {
		return false
	}
	defer f.Close()
	d, n, err := digest.FromReader(f)
	return err == nil && n == e.Size && d == e.SHA256
}

func (ap *applier) copyFrom(from string, w io.Writer) error {
	f, err := ap.a.OpenFile(from)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func (ap *applier) staged(d digest.Digest) (*os.File, error) {
	return os.Open(filepath.Join(ap.staging, d.String()))
}

func (ap *applier) decompress(a *Action, w io.Writer) error {
	f, err := ap.staged(a.Object.Stored)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = delta.Decompress(f, w, a.Entry.Size)
	return err
}

// applyDelta maps the base from the active slot (never copied into memory)
// and streams the patched output.
func (ap *applier) applyDelta(a *Action, w io.Writer) error {
	f, err := ap.staged(a.Delta.SHA256)
	if err != nil {
		return err
	}
	defer f.Close()
	base, err := ap.a.OpenFile(a.From)
	if err != nil {
		return err
	}
	defer base.Close()
	st, err := base.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 || st.Size() > delta.MaxBase {
		return fmt.Errorf("delta base %s of %d bytes: %w", a.From, st.Size(), errdefs.ErrCorrupt)
	}
	old, err := unix.Mmap(int(base.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap %s: %w", a.From, err)
	}
	defer unix.Munmap(old)
	_, err = delta.Apply(old, f, w, a.Entry.Size)
	return err
}

// links makes every hard-link member share its group's inode.
func (ap *applier) links() error {
	for i := range ap.t.Manifest.Entries {
		e := &ap.t.Manifest.Entries[i]
		if e.Type != manifest.File || e.Link == "" {
			continue
		}
		s1, err1 := ap.b.Lstat(e.Link)
		s2, err2 := ap.b.Lstat(e.Path)
		if err1 == nil && err2 == nil && s1.Ino == s2.Ino {
			continue
		}
		if err := ap.b.LinkReplace(ap.b, e.Link, e.Path); err != nil {
			return err
		}
	}
	return nil
}

// removeExtras deletes everything in b that the target does not list,
// including temp files a crash left behind.
func (ap *applier) removeExtras(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	names, err := ap.b.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := n
		if dir != "" {
			p = dir + "/" + n
		}
		e := ap.t.Manifest.Find(p)
		if e == nil {
			if err := ap.b.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		if e.Type == manifest.Dir {
			if err := ap.removeExtras(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func defaultWorkers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}
