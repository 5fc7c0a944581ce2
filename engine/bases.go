package engine

import (
	"context"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

// Second bases placed in this run, and the removal of what the target no
// longer lists.

// baseFile is a file of the new slot that a later delta uses as its second
// base (Action.WithInB). Its content is read from its temp file as soon as
// that is written and checked against the manifest, before the temp is
// committed: a dependent delta need not wait for a batch's syncfs and
// rename. (Placement levels used to be barriers, each costing a syncfs and
// the wait for the slowest file of the level; the chain of Go's tool
// executables made five of them.) The dependent's own temp is committed in
// a later or the same batch, after the same kind of syncfs, so nothing is
// renamed into place before its data is durable.
type baseFile struct {
	once  sync.Once
	ready chan struct{}
	f     *os.File // a duplicate descriptor of the checked temp; nil: read the path in b
	err   error
}

func (bf *baseFile) set(f *os.File, err error) {
	bf.once.Do(func() {
		bf.f, bf.err = f, err
		close(bf.ready)
	})
}

// baseWritten records that the temp for path holds its checked content
// (called by writeTemp). The temp's own descriptor is closed when it is
// committed, so the base keeps a duplicate.
func (ap *applier) baseWritten(path string, tmp *slotfs.Temp) {
	bf := ap.bases[path]
	if bf == nil {
		return
	}
	fd, err := unix.FcntlInt(tmp.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		bf.set(nil, fmt.Errorf("dup %s: %w", path, err))
		return
	}
	bf.set(os.NewFile(uintptr(fd), path), nil)
}

// baseDone ends the wait for path once its placement returned, whatever
// happened: placed without a temp (an earlier run put it in b) means the
// path in b is read; a failure is passed on.
func (ap *applier) baseDone(path string, err error) {
	if bf := ap.bases[path]; bf != nil {
		if err == nil {
			bf.set(nil, nil)
		} else {
			bf.set(nil, fmt.Errorf("%s was not placed: %w", path, err))
		}
	}
}

// waitBase blocks until a's second base (if it is placed in this run) is
// ready. It is called before a takes a placement slot, so that a waiting
// delta never holds what its base needs. Jobs are handed out in level
// order and a producer always has a lower level, so the producer is
// already running (or done) when its dependent waits.
func (ap *applier) waitBase(ctx context.Context, a *Action) error {
	if !a.WithInB {
		return nil
	}
	bf := ap.bases[a.With]
	if bf == nil {
		return nil
	}
	select {
	case <-bf.ready:
		return bf.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// secondBase opens a's second base; done releases it.
func (ap *applier) secondBase(a *Action) (*os.File, func(), error) {
	if !a.WithInB {
		f, err := ap.a.OpenFile(a.With)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	if bf := ap.bases[a.With]; bf != nil {
		select {
		case <-bf.ready:
		default:
			return nil, nil, fmt.Errorf("%s is not placed yet", a.With) // waitBase was not called: a bug
		}
		if bf.err != nil {
			return nil, nil, bf.err
		}
		if bf.f != nil {
			return bf.f, func() {}, nil // shared by its dependents; closeBases closes it
		}
	}
	f, err := ap.b.OpenFile(a.With)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// closeBases closes the descriptors kept for second bases (run's end).
func (ap *applier) closeBases() {
	for _, bf := range ap.bases {
		bf.set(nil, fmt.Errorf("apply ended: %w", context.Canceled))
		if bf.f != nil {
			bf.f.Close()
		}
	}
}

// removeStale deletes what b holds but the target does not list. After a
// clone made in this run, b holds exactly the cloned entries (the clone
// removed everything else), the structure step and the placed files are
// the target's, and every temp was committed or removed: the stale names
// are the cloned entries that the target lacks, found without listing a
// directory. cloneSet leaves none, so this is a check that costs one
// lookup per entry. A resumed job's b may hold anything (a crash's temp
// files), so it is listed in full.
func (ap *applier) removeStale(ctx context.Context) error {
	if ap.cloned == nil || ap.resume {
		return ap.removeExtras(ctx, "")
	}
	gone := map[string]bool{} // removed or replaced directories: their subtrees went with them
	for i := range ap.cloned.Entries {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		e := &ap.cloned.Entries[i]
		if under(gone, e.Path) {
			continue
		}
		if t := ap.t.Manifest.Find(e.Path); t != nil {
			if e.Type == manifest.Dir && t.Type != manifest.Dir {
				gone[e.Path] = true // the structure step removed it with its subtree
			}
			continue
		}
		if err := ap.b.RemoveAll(e.Path); err != nil {
			return err
		}
		if e.Type == manifest.Dir {
			gone[e.Path] = true
		}
	}
	return nil
}

// under reports whether one of p's parents is in dirs.
func under(dirs map[string]bool, p string) bool {
	if len(dirs) == 0 {
		return false
	}
	for d := manifest.Parent(p); d != ""; d = manifest.Parent(d) {
		if dirs[d] {
			return true
		}
	}
	return false
}
