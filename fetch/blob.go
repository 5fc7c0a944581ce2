package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"laptop.org/upgrade/errdefs"
)

// Fetch downloads every blob into dir as dir/<sha256 hex>. A final name exists
// only for a complete, verified, durable file; in-progress bytes live in
// dir/<hex>.partial and are resumed by a later call, even after kill -9.
// Finished blobs are made final in batches (commit.go), all of them before
// Fetch returns. Blobs already final are skipped. The first blob that fails on every mirror
// stops the others (their partials are kept) and its error is returned:
// ErrNetwork, or ErrCorrupt / ErrTooLarge when every mirror served bad bytes.
// A cancelled ctx returns promptly with an error wrapping ErrCancelled and
// ctx's error.
func (f *Fetcher) Fetch(ctx context.Context, dir string, blobs []Blob) error {
	todo, err := f.plan(dir, blobs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fetch: mkdir %s: %w", dir, err)
	}
	run := &run{progress: f.o.Progress, commits: &committer{dir: dir}}
	for _, b := range todo {
		run.total += b.Size
	}
	run.add(0)

	ctx2, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan Blob)
	)
	for range min(f.o.Parallel, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if err := f.fetchBlob(ctx2, dir, b, run); err != nil {
					once.Do(func() { first = err; stop(err) })
				}
			}
		}()
	}
feed:
	for _, b := range todo {
		select {
		case next <- b:
		case <-ctx2.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	// Blobs that arrived are committed even when another failed or ctx was
	// cancelled: a later run then skips them instead of rehashing.
	if err := run.commits.flush(); err != nil && first == nil {
		first = fmt.Errorf("fetch: %w", err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("fetch: %w: %w", errdefs.ErrCancelled, context.Cause(ctx))
	}
	return first
}

// plan validates blobs, drops duplicates and those already final.
func (f *Fetcher) plan(dir string, blobs []Blob) ([]Blob, error) {
	seen := make(map[[32]byte]Blob, len(blobs))
	var todo []Blob
	for _, b := range blobs {
		if err := checkPath(b.Path); err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
		if b.Size < 0 || b.SHA256.IsZero() {
			return nil, fmt.Errorf("fetch: blob %s: size %d, digest %s: %w", b.Path, b.Size, b.SHA256, errdefs.ErrInvalidArgument)
		}
		if o, ok := seen[b.SHA256]; ok {
			if o.Size != b.Size {
				return nil, fmt.Errorf("fetch: digest %s listed with sizes %d and %d: %w", b.SHA256, o.Size, b.Size, errdefs.ErrInvalidArgument)
			}
			continue
		}
		seen[b.SHA256] = b
		if !isFinal(dir, b) {
			todo = append(todo, b)
		}
	}
	return todo, nil
}

// run is the progress of one Fetch call.
type run struct {
	commits  *committer
	progress func(done, total int64)
	done     atomic.Int64
	total    int64
}

func (r *run) add(n int64) {
	d := r.done.Add(n)
	if r.progress != nil {
		r.progress(d, r.total)
	}
}

// mirrorFailure is why one mirror could not serve a blob or document.
type mirrorFailure struct {
	mirror string
	err    error
}

// fetchBlob gets one blob: resume its partial, try mirrors (healthy first),
// commit. Parallelism is bounded here so that Get and Fetch share it.
func (f *Fetcher) fetchBlob(ctx context.Context, dir string, b Blob, r *run) error {
	select {
	case f.sem <- struct{}{}:
		defer func() { <-f.sem }()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	p, err := openPartial(dir, b, r.add)
	if err != nil {
		return fmt.Errorf("blob %s (%s): %w", b.Path, b.SHA256, err)
	}
	handed := false // to the committer, which closes p after the rename
	defer func() {
		if !handed {
			p.close()
		}
	}()
	if isFinal(dir, b) { // another process finished it while we waited
		r.add(b.Size - p.off)
		p.remove()
		return nil
	}
	if p.off > 0 {
		f.logf("fetch: %s: resuming at %d of %d", b.Path, p.off, b.Size)
	}
	var fails []mirrorFailure
	for _, i := range f.order() {
		m := f.mirrors[i]
		err := f.fromMirror(ctx, m, b, p)
		if err == nil {
			f.down[i].Store(false)
			handed = true
			if err := r.commits.add(p, b); err != nil {
				return fmt.Errorf("blob %s: %w", b.Path, err)
			}
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.As(err, new(localError)) {
			return fmt.Errorf("blob %s: %w", b.Path, err)
		}
		f.logf("fetch: %s from %s: %v", b.Path, m.Redacted(), err)
		fails = append(fails, mirrorFailure{m.Redacted(), err})
		if isContent(err) {
			// Bad bytes: never let them seed the next mirror's download.
			if rerr := p.reset(); rerr != nil {
				p.remove()
				return fmt.Errorf("blob %s: %w", b.Path, rerr)
			}
		} else if !errors.As(err, new(permanentError)) {
			f.down[i].Store(true)
		}
	}
	if p.off == 0 {
		p.remove() // nothing worth resuming
	}
	return summarize(fmt.Sprintf("blob %s (%s)", b.Path, b.SHA256), fails)
}

// isContent reports a failure that proves the mirror's bytes wrong.
func isContent(err error) bool {
	return errors.Is(err, errdefs.ErrCorrupt) || errors.Is(err, errdefs.ErrTooLarge) || errors.Is(err, errBadCheck)
}

// progressUnit is how much an attempt must deliver for its failure not to
// count as a retry: enough that a mirror trickling a byte per stall timeout
// still runs out of retries.
const progressUnit = 256 << 10

// fromMirror brings p to b.Size bytes with the right digest from one mirror,
// retrying with Range from the current offset and backoff. Attempts that
// make progress do not use up retries.
func (f *Fetcher) fromMirror(ctx context.Context, m *url.URL, b Blob, p *partial) error {
	p.foreign = p.foreign || p.off > 0
	tries := 0
	for {
		if p.off == b.Size {
			if p.sum() == b.SHA256 {
				return nil
			}
			if p.foreign {
				// Our earlier bytes (another mirror, a crash) may be the bad
				// ones: give this mirror a clean try before blaming it.
				f.logf("fetch: %s: digest mismatch on resumed bytes, starting over", b.Path)
				if err := p.reset(); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("digest %s, want %s: %w", p.sum(), b.SHA256, errdefs.ErrCorrupt)
		}
		before := p.off
		err := f.attempt(ctx, m, b, p)
		if err == nil {
			continue
		}
		if ctx.Err() != nil || isContent(err) || errors.As(err, new(localError)) {
			return err
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return err
		}
		if errors.Is(err, errRestart) {
			if rerr := p.reset(); rerr != nil {
				return rerr
			}
		}
		if p.off-before >= progressUnit {
			tries = 0 // a cut connection that delivered is worth resuming
			continue
		}
		if tries >= f.o.Retries {
			return err
		}
		d := f.backoff(tries, err)
		tries++
		f.logf("fetch: %s from %s: %v; retry %d in %v", b.Path, m.Redacted(), err, tries, d)
		if serr := sleepCtx(ctx, d); serr != nil {
			return serr
		}
	}
}

// attempt is one request: stream from p.off towards b.Size into p, reading at
// most one byte past the signed size to detect an overrun.
func (f *Fetcher) attempt(ctx context.Context, m *url.URL, b Blob, p *partial) error {
	r, start, done, err := f.open(ctx, m, b.Path, p.off, b.Size, nil)
	if err != nil {
		return err
	}
	defer done()
	if start != p.off {
		if err := p.reset(); err != nil {
			return err
		}
	}
	want := b.Size - p.off
	n, err := io.CopyBuffer(p, io.LimitReader(r, want), make([]byte, 32<<10))
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if r, ok := r.(*meter); ok && r.st != nil {
			return f.streamErr(ctx, r.ctx, err)
		}
		return err
	}
	if n < want {
		if m.Scheme == "file" {
			return fmt.Errorf("file has %d bytes, want %d: %w", p.off, b.Size, errdefs.ErrCorrupt)
		}
		return fmt.Errorf("body ended at %d of %d: %w", p.off, b.Size, io.ErrUnexpectedEOF)
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return fmt.Errorf("more than the signed %d bytes: %w", b.Size, errdefs.ErrTooLarge)
	}
	return nil
}

// summarize turns every mirror's failure into one error with one class:
// the shared content class when every mirror served bad bytes, else ErrNetwork.
func summarize(what string, fails []mirrorFailure) error {
	var msgs []string
	var class error
	for i, fl := range fails {
		msgs = append(msgs, fl.mirror+": "+fl.err.Error())
		c := contentClass(fl.err)
		switch {
		case c == nil:
			class = errdefs.ErrNetwork
		case i == 0:
			class = c
		case class != c && class != errdefs.ErrNetwork:
			class = errdefs.ErrCorrupt
		}
	}
	if class == nil {
		class = errdefs.ErrNetwork
	}
	var ce checkError
	if class == errBadCheck && errors.As(fails[len(fails)-1].err, &ce) {
		// Every mirror failed the caller's check: keep the check's own class
		// without printing its message twice (msgs already holds it).
		return &summaryError{msg: fmt.Sprintf("%s: every mirror failed: %s", what, strings.Join(msgs, "; ")), err: ce.err}
	}
	return fmt.Errorf("%s: every mirror failed: %s: %w", what, strings.Join(msgs, "; "), class)
}

// summaryError is a message that already says everything, wrapping the
// error that classifies it.
type summaryError struct {
	msg string
	err error
}

func (e *summaryError) Error() string { return e.msg }
func (e *summaryError) Unwrap() error { return e.err }

func contentClass(err error) error {
	switch {
	case errors.Is(err, errBadCheck):
		return errBadCheck
	case errors.Is(err, errdefs.ErrTooLarge):
		return errdefs.ErrTooLarge
	case errors.Is(err, errdefs.ErrCorrupt):
		return errdefs.ErrCorrupt
	}
	return nil
}
