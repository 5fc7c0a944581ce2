package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/delta/deflate"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

// applier rewrites the inactive slot b to the target manifest. It never
// writes an existing inode: new content and new metadata go to a temp file
// that is renamed into place; the active slot a is only read and linked from.
type applier struct {
	a, b    *slotfs.Root // a may be nil (provisioning an empty machine)
	t       *Target
	p       *Plan
	staging string
	resume  bool // b may hold results of an earlier run: check before redoing
	// cloned is the manifest b was cloned from in this run (nil when not
	// known): b's state is then known without a stat per entry.
	cloned   *manifest.Manifest
	workers  int
	progress func(done, total int)
	done     atomic.Int64
	// slots bounds the files being placed at once to workers, whether a
	// worker places them or a pack's item pool: each holds a decoder, a
	// frame of output and mapped bases.
	slots chan struct{}
	// big admits one delta with a large dictionary at a time: decoding a
	// 4 MiB frame of a new 28 MB executable touches 12-17 MB of the old
	// one's mapped pages, and two at once doubled the resident set.
	big chan struct{}
	// bases are the files of b that later deltas use as second bases
	// (Action.WithInB), by path.
	bases map[string]*baseFile
	// written holds the digest of each file committed in this run, as
	// writeTemp computed and checked it; the committer alone writes it,
	// the final verification reads it after run (see verify.Options.Written).
	written map[verify.Inode]digest.Digest
}

// Written is verify.Options.Written for the slot this applier wrote.
func (ap *applier) Written(i verify.Inode) (digest.Digest, bool) {
	d, ok := ap.written[i]
	return d, ok
}

// takeBig waits for the big slot and returns its release. While it holds
// a base of at least bigDict bytes, the collector keeps the heap tighter
// (tighten): the base's resident pages come on top of the heap.
func (ap *applier) takeBig(size int) func() {
	ap.big <- struct{}{}
	undo := func() {}
	if size >= bigDict {
		undo = tighten()
	}
	return func() {
		undo()
		<-ap.big
	}
}

// bigDict is the dictionary size from which a delta takes the big slot.
const bigDict = 8 << 20

func (ap *applier) run(ctx context.Context) error {
	ap.slots = make(chan struct{}, max(ap.workers, 1))
	ap.big = make(chan struct{}, 1)
	ap.bases = map[string]*baseFile{}
	ap.written = map[verify.Inode]digest.Digest{}
	for i := range ap.p.Actions {
		if a := &ap.p.Actions[i]; a.WithInB {
			ap.bases[a.With] = &baseFile{ready: make(chan struct{})}
		}
	}
	defer ap.closeBases()
	if err := ap.structure(ctx); err != nil {
		return fmt.Errorf("apply structure: %w", err)
	}
	if err := ap.files(ctx); err != nil {
		return fmt.Errorf("apply files: %w", err)
	}
	if err := ap.links(); err != nil {
		return fmt.Errorf("apply hard links: %w", err)
	}
	if err := ap.removeStale(ctx); err != nil {
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
		if e.Type == manifest.File && ap.cloned != nil && !ap.resume {
			// Only a directory the clone made at this path is in the way.
			if c := ap.cloned.Find(e.Path); c == nil || c.Type != manifest.Dir {
				continue
			}
		}
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
			// Always: a fresh directory inherits its parent's default ACL.
			if err := b.SetDirXattrs(e.Path, e.Xattrs); err != nil {
				return err
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

// place puts one file into b, or returns a temp file to commit.
func (ap *applier) place(a *Action) (pending, error) {
	e := a.Entry
	switch a.Src {
	case Keep:
		if ap.cloned != nil && !ap.resume {
			return pending{}, nil // the clone linked it moments ago
		}
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
	return ap.writeTemp(a, func(w io.Writer) error {
		switch a.Src {
		case Copy:
			return ap.copyFrom(a.From, w)
		case Delta:
			f, err := ap.staged(a.Delta.SHA256)
			if err != nil {
				return err
			}
			defer f.Close()
			return ap.applyDeltaFrom(a, f, w)
		default:
			return ap.decompress(a, w)
		}
	}, nil)
}

// writeTemp makes the temp file that will hold a's file: fill writes the
// content, then check (if any) runs, then the content's size and digest
// are checked against the manifest and the metadata set. On any error the
// temp file is removed.
func (ap *applier) writeTemp(a *Action, fill func(io.Writer) error, check func() error) (pending, error) {
	e := a.Entry
	dir := manifest.Parent(e.Path)
	tmp, err := ap.b.CreateTemp(dir)
	if err != nil {
		return pending{}, err
	}
	h := digest.NewWriter(tmp)
	err = fill(h)
	if err == nil && check != nil {
		err = check()
	}
	if err == nil && (h.N != e.Size || h.Digest() != e.SHA256) {
		err = fmt.Errorf("result has %d bytes %s, manifest says %d bytes %s: %w", h.N, h.Digest(), e.Size, e.SHA256, errdefs.ErrCorrupt)
	}
	if err == nil {
		err = tmp.SetMeta(e.Mode, e.UID, e.GID, e.Xattrs)
	}
	var st unix.Stat_t
	if err == nil {
		err = unix.Fstat(int(tmp.Fd()), &st)
	}
	if err != nil {
		tmp.Abort()
		return pending{}, err
	}
	gen, hasGen := verify.Generation(int(tmp.Fd()))
	ap.baseWritten(e.Path, tmp)
	base := e.Path[len(dir):]
	if dir != "" {
		base = base[1:]
	}
	p := pending{tmp: tmp, base: base, size: e.Size}
	if hasGen {
		p.ino, p.sum = verify.Inode{Dev: st.Dev, Ino: st.Ino, Gen: gen}, e.SHA256
	}
	return p, nil
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

// applyDeltaFrom maps the delta's bases (never copied into memory: the
// first from the active slot, a second one from the active slot or, placed
// at an earlier level, from the new slot) and streams the patched output.
func (ap *applier) applyDeltaFrom(a *Action, d io.Reader, w io.Writer) error {
	base, err := ap.a.OpenFile(a.From)
	if err != nil {
		return err
	}
	defer base.Close()
	switch a.Delta.Codec {
	case repo.CodecDeflate:
		return ap.applyCodec(deflate.ApplyDelta, base, d, w, a.Entry.Size)
	case repo.CodecELF, repo.CodecELFMap:
		return ap.applyELF(a.Delta.Codec, base, d, w, a.Entry.Size)
	}
	files := []*os.File{base}
	if a.With != "" {
		with, done, err := ap.secondBase(a)
		if err != nil {
			return fmt.Errorf("second base: %w", err)
		}
		defer done()
		files = append(files, with)
	}
	dict, err := mapDict(files...)
	if err != nil {
		return err
	}
	defer dict.close()
	if len(dict.b) >= bigDict {
		defer ap.takeBig(len(dict.b))()
		defer dropWhile(dict.drop)()
	}
	_, err = delta.Apply(dict.b, d, &dropper{w: w, drop: dict.drop, left: dropEvery}, a.Entry.Size)
	return err
}

// applyCodec applies a delta of repo.CodecDeflate to the mapped base: the
// codec transforms the base in memory (bounded by deflate.MaxPuff) and
// streams its inverse transform of the patched output; the caller checks
// the result's digest. (The ELF codecs transform in place: applyELF.)
// A large base takes the big slot: its transformed copy is on the heap.
func (ap *applier) applyCodec(apply func([]byte, io.Reader, io.Writer, int64) error, base *os.File, d io.Reader, w io.Writer, size int64) error {
	dict, err := mapDict(base)
	if err != nil {
		return err
	}
	defer dict.close()
	if len(dict.b) >= bigDict/4 {
		defer ap.takeBig(len(dict.b))()
	}
	return apply(dict.b, d, w, size)
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

// defaultWorkers is n, or one worker per core. Not per GOMAXPROCS: a daemon
// that runs with a spare P (GOMAXPROCS = cores + 1) keeps it for its D-Bus
// goroutines, which then answer within a scheduling quantum while a job
// keeps every core busy.
func defaultWorkers(n int) int {
	if n > 0 {
		return n
	}
	return max(1, min(runtime.GOMAXPROCS(0), runtime.NumCPU()))
}
