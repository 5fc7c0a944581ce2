package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"laptop.org/upgrade/errdefs"
)

// errBadCheck marks bytes that the caller's check rejected.
var errBadCheck = errors.New("rejected by check")

// checkError carries the caller's check error; it is a content failure
// (errBadCheck) so that the next mirror is tried.
type checkError struct{ err error }

func (e checkError) Error() string        { return "check: " + e.err.Error() }
func (e checkError) Unwrap() error        { return e.err }
func (e checkError) Is(target error) bool { return target == errBadCheck }

// Get fetches a small document that has no signed size (the signed index):
// at most max bytes, more is ErrTooLarge. Mirrors are tried in order, each
// with retries; check validates the bytes (signature, expiry, …) and a
// rejection moves on to the next mirror, so a malicious mirror cannot win
// over a good one. It returns the bytes and the base URL of the mirror that
// served them. When every mirror failed the check, the error wraps the last
// check error; when every mirror was too large, ErrTooLarge; else ErrNetwork.
// Caches are asked to revalidate (Cache-Control: no-cache): the index is
// the one file that changes.
func (f *Fetcher) Get(ctx context.Context, path string, max int64, check func([]byte) error) ([]byte, string, error) {
	if err := checkPath(path); err != nil {
		return nil, "", fmt.Errorf("get: %w", err)
	}
	if max <= 0 {
		return nil, "", fmt.Errorf("get %s: max %d: %w", path, max, errdefs.ErrInvalidArgument)
	}
	select {
	case f.sem <- struct{}{}:
		defer func() { <-f.sem }()
	case <-ctx.Done():
		return nil, "", fmt.Errorf("get %s: %w: %w", path, errdefs.ErrCancelled, context.Cause(ctx))
	}
	var fails []mirrorFailure
	for _, i := range f.order() {
		m := f.mirrors[i]
		b, err := f.getFrom(ctx, i, path, max)
		if err == nil && check != nil {
			if cerr := check(b); cerr != nil {
				err = checkError{cerr}
			}
		}
		if err == nil {
			return b, m.String(), nil
		}
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("get %s: %w: %w", path, errdefs.ErrCancelled, context.Cause(ctx))
		}
		f.logf("fetch: get %s from %s: %v", path, m.Redacted(), err)
		fails = append(fails, mirrorFailure{m.Redacted(), err})
	}
	return nil, "", summarize("get "+path, fails)
}

// getFrom reads the whole document from mirror i, retrying failures that
// retrying can fix.
func (f *Fetcher) getFrom(ctx context.Context, i int, path string, max int64) ([]byte, error) {
	hdr := http.Header{"Cache-Control": {"no-cache"}}
	for tries := 0; ; tries++ {
		b, err := f.getOnce(ctx, i, path, max, hdr)
		if err == nil {
			f.down[i].Store(false)
			return b, nil
		}
		if ctx.Err() != nil || isContent(err) || errors.As(err, new(permanentError)) {
			return nil, err
		}
		if tries >= f.o.Retries {
			f.down[i].Store(true)
			return nil, err
		}
		if serr := sleepCtx(ctx, f.backoff(tries, err)); serr != nil {
			return nil, serr
		}
	}
}

func (f *Fetcher) getOnce(ctx context.Context, i int, path string, max int64, hdr http.Header) ([]byte, error) {
	r, _, done, err := f.open(ctx, f.mirrors[i], path, 0, -1, hdr)
	if err != nil {
		return nil, err
	}
	defer done()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, max+1))
	if err != nil {
		if m, ok := r.(*meter); ok && m.st != nil {
			return nil, f.streamErr(ctx, m.ctx, err)
		}
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("more than %d bytes: %w", max, errdefs.ErrTooLarge)
	}
	return buf.Bytes(), nil
}

// GetBest is Get asking every mirror, for the document that outranks the
// others: check validates the bytes like Get's and ranks them (the signed
// index's serial), and the highest rank wins, ties going to the mirror
// tried first. One stale mirror answering first cannot hold a client back
// while another serves something newer. Mirrors are asked in parallel
// (within Options.Parallel); errors are as Get's when none passes.
func (f *Fetcher) GetBest(ctx context.Context, path string, max int64, check func([]byte) (uint64, error)) ([]byte, string, error) {
	if err := checkPath(path); err != nil {
		return nil, "", fmt.Errorf("get: %w", err)
	}
	if max <= 0 || check == nil {
		return nil, "", fmt.Errorf("get %s: max %d: %w", path, max, errdefs.ErrInvalidArgument)
	}
	type answer struct {
		b    []byte
		rank uint64
		err  error
	}
	order := f.order()
	answers := make([]answer, len(order))
	var wg sync.WaitGroup
	for k, i := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case f.sem <- struct{}{}:
				defer func() { <-f.sem }()
			case <-ctx.Done():
				answers[k].err = ctx.Err()
				return
			}
			b, err := f.getFrom(ctx, i, path, max)
			var rank uint64
			if err == nil {
				if rank, err = check(b); err != nil {
					err = checkError{err}
				}
			}
			answers[k] = answer{b, rank, err}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, "", fmt.Errorf("get %s: %w: %w", path, errdefs.ErrCancelled, context.Cause(ctx))
	}
	best := -1
	var fails []mirrorFailure
	for k, a := range answers {
		m := f.mirrors[order[k]]
		if a.err != nil {
			f.logf("fetch: get %s from %s: %v", path, m.Redacted(), a.err)
			fails = append(fails, mirrorFailure{m.Redacted(), a.err})
			continue
		}
		if best < 0 || a.rank > answers[best].rank {
			best = k
		}
	}
	if best < 0 {
		return nil, "", summarize("get "+path, fails)
	}
	return answers[best].b, f.mirrors[order[best]].String(), nil
}
