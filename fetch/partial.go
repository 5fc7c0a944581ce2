package fetch

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
)

// partial is the in-progress download of one blob: dir/<hex>.partial, locked
// with flock so two downloaders never interleave writes, with a running hash
// of the bytes in it. Its length is the resume offset.
type partial struct {
	dir, name string // final name is dir/name, partial is dir/name.partial
	f         *os.File
	h         hash.Hash
	off       int64
	// foreign: some bytes came from earlier runs or other mirrors, so a
	// digest mismatch does not yet prove the current mirror bad.
	foreign  bool
	progress func(delta int64)
}

func (p *partial) path() string { return filepath.Join(p.dir, p.name+".partial") }

// openPartial locks and rehashes dir/<hex>.partial, recovering the offset as
// containerd's local store does. A partial longer than size, or unreadable,
// is emptied: starting over is always safe.
func openPartial(dir string, b Blob, progress func(int64)) (*partial, error) {
	p := &partial{dir: dir, name: b.SHA256.String(), h: sha256.New(), progress: progress}
	f, err := os.OpenFile(p.path(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open partial %s: %w", p.path(), err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock partial %s: %v: %w", p.path(), err, errdefs.ErrBusy)
	}
	p.f = f
	fi, err := f.Stat()
	if err != nil {
		p.close()
		return nil, fmt.Errorf("stat partial %s: %w", p.path(), err)
	}
	n, err := int64(0), error(nil)
	if fi.Size() <= b.Size {
		n, err = io.Copy(p.h, io.NewSectionReader(f, 0, fi.Size()))
	}
	if fi.Size() > b.Size || err != nil || n != fi.Size() {
		if err := p.reset(); err != nil {
			p.close()
			return nil, err
		}
		return p, nil
	}
	p.off = n
	p.foreign = n > 0
	if n > 0 {
		p.progress(n)
	}
	return p, nil
}

// Write appends to the partial and the running hash.
func (p *partial) Write(b []byte) (int, error) {
	n, err := p.f.WriteAt(b, p.off)
	p.h.Write(b[:n])
	p.off += int64(n)
	if n > 0 {
		p.progress(int64(n))
	}
	if err != nil {
		return n, localError{fmt.Errorf("write %s: %w", p.path(), err)}
	}
	return n, nil
}

// localError is a failure of our own disk, not of the mirror: no other
// mirror can fix it. A full disk is ErrNoSpace.
type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }
func (e localError) Unwrap() []error {
	if errors.Is(e.err, syscall.ENOSPC) || errors.Is(e.err, syscall.EDQUOT) {
		return []error{e.err, errdefs.ErrNoSpace}
	}
	return []error{e.err}
}

// reset empties the partial to start the blob over.
func (p *partial) reset() error {
	p.progress(-p.off)
	p.off = 0
	p.foreign = false
	p.h.Reset()
	if err := p.f.Truncate(0); err != nil {
		return localError{fmt.Errorf("truncate partial %s: %w", p.path(), err)}
	}
	return nil
}

// sum is the digest of the bytes written so far.
func (p *partial) sum() digest.Digest { return digest.Sum(p.h) }

// remove deletes the partial (after a mirror served bad bytes).
func (p *partial) remove() {
	os.Remove(p.path())
	p.close()
}

func (p *partial) close() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}

// check confirms that the partial holds exactly b (size and digest); the
// committer then makes it durable and final (commit.go).
func (p *partial) check(b Blob) error {
	if p.off != b.Size {
		return fmt.Errorf("commit %s: size %d, want %d: %w", p.name, p.off, b.Size, errdefs.ErrCorrupt)
	}
	if got := p.sum(); got != b.SHA256 {
		return fmt.Errorf("commit %s: digest %s: %w", p.name, got, errdefs.ErrCorrupt)
	}
	return nil
}

// isFinal reports whether dir holds b under its final name. Only commit puts
// files there, so a regular file of the right size is trusted without
// rehashing; a wrong size means someone else wrote it, and it is fetched again.
func isFinal(dir string, b Blob) bool {
	fi, err := os.Lstat(filepath.Join(dir, b.SHA256.String()))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == b.Size
}
