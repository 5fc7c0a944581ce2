package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"laptop.org/upgrade/errdefs"
)

// Internal outcomes of one attempt; the mirror loop decides what they cost.
var (
	// errStalled is the cause given to an attempt's context when no byte
	// arrived for StallTimeout.
	errStalled = errors.New("stalled")
	// errRestart: the mirror cannot continue from our offset (416, or a
	// Content-Range that does not match); start the blob over from byte 0.
	errRestart = errors.New("cannot resume")
)

// permanentError is a failure that retrying the same mirror will not fix
// (404, 403, a bad TLS certificate, a missing file): fail over at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// statusError is an HTTP answer we did not want; resp (body closed) is kept
// for Retry-After.
type statusError struct{ resp *http.Response }

func (e statusError) Error() string { return "HTTP " + e.resp.Status }

// stall cancels an attempt when its timer is not kicked for d.
type stall struct {
	t *time.Timer
	d time.Duration
}

func newStall(d time.Duration, cancel context.CancelCauseFunc) *stall {
	return &stall{d: d, t: time.AfterFunc(d, func() { cancel(errStalled) })}
}

func (s *stall) kick() {
	if s != nil {
		s.t.Reset(s.d)
	}
}

func (s *stall) stop() {
	if s != nil {
		s.t.Stop()
	}
}

// meter wraps a mirror's byte stream: it counts received bytes, paces them
// (MaxRate), kicks the stall timer on every byte, and for files (which have no
// request context) checks ctx between reads.
type meter struct {
	r   io.Reader
	f   *Fetcher
	ctx context.Context
	st  *stall
	// The rate floor (Options.MinRate): at least floor bytes must arrive
	// in each window of length span, measured from win (time spent in
	// our own rate limiter does not count). floor 0: none.
	floor    int64
	span     time.Duration
	win      time.Time
	winBytes int64
}

func (m *meter) Read(p []byte) (int, error) {
	if m.f.limit != nil && len(p) > m.f.limit.chunk() {
		p = p[:m.f.limit.chunk()]
	}
	if err := m.ctx.Err(); err != nil {
		return 0, context.Cause(m.ctx)
	}
	n, err := m.r.Read(p)
	if n > 0 {
		m.f.received.Add(int64(n))
		if m.f.limit != nil {
			m.st.stop() // waiting for our own rate limit is not a stall
			t0 := time.Now()
			if werr := m.f.limit.wait(m.ctx, n); werr != nil {
				return n, werr
			}
			m.win = m.win.Add(time.Since(t0))
		}
		m.st.kick()
		if ferr := m.checkFloor(n); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

// checkFloor counts n more bytes in the current window and fails the
// attempt (errStalled) when a whole window passed with fewer than floor.
func (m *meter) checkFloor(n int) error {
	if m.floor <= 0 {
		return nil
	}
	m.winBytes += int64(n)
	if m.winBytes >= m.floor {
		m.win, m.winBytes = time.Now(), 0
		return nil
	}
	if time.Since(m.win) >= m.span {
		return fmt.Errorf("%d bytes in %v, under the floor of %d B/s: %w", m.winBytes, m.span, m.f.o.MinRate, errStalled)
	}
	return nil
}

// blobURL joins a validated repo-relative path onto a mirror base.
func blobURL(base *url.URL, p string) *url.URL { return base.JoinPath(p) }

// open starts reading b from mirror base at offset off. It returns a stream
// positioned at *start* (off, or 0 when the mirror made us start over) and a
// function that ends the attempt. The stream yields at most what the server
// sends; the caller bounds it by the signed size.
func (f *Fetcher) open(ctx context.Context, base *url.URL, p string, off, size int64, extra http.Header) (r io.Reader, start int64, done func(), err error) {
	if base.Scheme == "file" {
		return f.openFile(ctx, base, p, off)
	}
	actx, cancel := context.WithCancelCause(ctx)
	st := newStall(f.o.StallTimeout, cancel)
	fail := func(err error) (io.Reader, int64, func(), error) {
		st.stop()
		cancel(nil)
		if c := context.Cause(actx); errors.Is(c, errStalled) && ctx.Err() == nil && !errors.Is(err, errStalled) {
			err = fmt.Errorf("no response for %v: %w", f.o.StallTimeout, errStalled)
		}
		return nil, 0, nil, err
	}
	u := blobURL(base, p)
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(permanentError{err})
	}
	req.Header.Set("User-Agent", f.o.UserAgent)
	for k, v := range extra {
		req.Header[k] = v
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if retry, _ := retryablehttp.DefaultRetryPolicy(ctx, nil, err); !retry && ctx.Err() == nil {
			return fail(permanentError{err})
		}
		return fail(err)
	}
	st.kick()
	m := &meter{r: resp.Body, f: f, ctx: actx, st: st, span: f.o.StallTimeout, win: time.Now()}
	if f.o.MinRate > 0 {
		m.floor = max(1, int64(f.o.MinRate*int64(f.o.StallTimeout)/int64(time.Second)))
	}
	done = func() {
		st.stop()
		cancel(nil)
		resp.Body.Close()
	}
	failResp := func(err error) (io.Reader, int64, func(), error) {
		done()
		return fail(err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		first, last, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != off || total != size || last < first || last >= size {
			f.logf("fetch: %s: Content-Range %q for offset %d of %d: starting over", u.Redacted(), resp.Header.Get("Content-Range"), off, size)
			return failResp(errRestart)
		}
		return m, off, done, nil
	case resp.StatusCode == http.StatusOK:
		if size >= 0 && resp.ContentLength > size {
			return failResp(fmt.Errorf("Content-Length %d > signed size %d: %w", resp.ContentLength, size, errdefs.ErrTooLarge))
		}
		if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength < size {
			return failResp(fmt.Errorf("Content-Length %d < signed size %d: %w", resp.ContentLength, size, errdefs.ErrCorrupt))
		}
		if off > 0 {
			// The server ignored Range: skip what we already have.
			f.logf("fetch: %s ignored Range: skipping %d bytes", u.Redacted(), off)
			if _, err := io.CopyN(io.Discard, m, off); err != nil {
				return failResp(f.streamErr(ctx, actx, err))
			}
		}
		return m, off, done, nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && off > 0:
		return failResp(errRestart)
	}
	se := statusError{resp: resp}
	if retry, _ := retryablehttp.DefaultRetryPolicy(ctx, resp, nil); !retry {
		return failResp(permanentError{se})
	}
	return failResp(se)
}

// streamErr names an error seen while reading an attempt's body, telling a
// stall apart from a cancel of the caller's context.
func (f *Fetcher) streamErr(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(context.Cause(actx), errStalled) {
		return fmt.Errorf("no byte for %v: %w", f.o.StallTimeout, errStalled)
	}
	return err
}

// openFile reads from a file:// mirror (a USB stick, a mounted share).
func (f *Fetcher) openFile(ctx context.Context, base *url.URL, p string, off int64) (io.Reader, int64, func(), error) {
	name := filepath.Join(filepath.FromSlash(base.Path), filepath.FromSlash(p))
	// Non-blocking: opening a fifo for reading would wait for a writer
	// forever. Only a regular file is read.
	fh, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, nil, permanentError{err}
	}
	if st, err := fh.Stat(); err != nil || !st.Mode().IsRegular() {
		fh.Close()
		if err == nil {
			err = fmt.Errorf("%s is a %v, not a regular file", name, st.Mode().Type())
		}
		return nil, 0, nil, permanentError{err}
	}
	if off > 0 {
		if _, err := fh.Seek(off, io.SeekStart); err != nil {
			fh.Close()
			return nil, 0, nil, permanentError{err}
		}
	}
	return &meter{r: fh, f: f, ctx: ctx}, off, func() { fh.Close() }, nil
}

// parseContentRange parses "bytes first-last/total" (total must be known).
func parseContentRange(s string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	total, err3 = strconv.ParseInt(tot, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first < 0 {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// backoff is how long to wait before retry number n (0-based) on a mirror,
// honouring a server's Retry-After up to RetryWaitMax.
func (f *Fetcher) backoff(n int, err error) time.Duration {
	var resp *http.Response
	var se statusError
	if errors.As(err, &se) {
		resp = se.resp
	}
	d := retryablehttp.DefaultBackoff(f.o.RetryWaitMin, f.o.RetryWaitMax, n, resp)
	return min(d, f.o.RetryWaitMax)
}
