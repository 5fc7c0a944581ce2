// Package sugartest runs the Sugar control panel section (contrib/sugar)
// against the real daemon: a private system bus, a published repository on
// [::1], securityd and upgraded from ./bin, a stand-in logind, and Xvfb for
// the view. The Python tests in contrib/sugar/tests drive it through a small
// control server (reset, hold the download, take the mirror down, kill and
// restart the daemon, list reboot requests).
//
// `make sugartest` sets UPGRADE_SUGAR=1 and installs the section first;
// plain `go test ./...` runs only the unit tests of this package's helpers.
package sugartest

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Gate stands between the daemon and the repository. Holding makes every
// response stop after a number of body bytes until Release, so a test can
// look at an upgrade in the middle of its download for as long as it needs
// (taking a screenshot, cancelling, killing the daemon) without depending
// on how fast the machine is. Down makes the mirror answer 503 to
// everything, as a broken mirror does.
type Gate struct {
	h http.Handler

	mu      sync.Mutex
	after   int64         // hold each response after this many bytes; 0: no hold
	release chan struct{} // closed by Release
	down    bool
}

// NewGate wraps h, passing everything through.
func NewGate(h http.Handler) *Gate {
	return &Gate{h: h, release: make(chan struct{})}
}

// Hold makes responses started from now on stop at byte n of the file
// (n > 0) until Release. The point is absolute: a request that resumes with
// Range from offset o stops after n-o bytes, or at once if o >= n, so a
// client that gives up on a held request and retries (the daemon's stall
// timeout) gets no further while the gate holds.
func (g *Gate) Hold(n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n <= 0 {
		n = 1
	}
	if g.after == 0 {
		g.release = make(chan struct{})
	}
	g.after = n
}

// Release lets held responses go on and stops holding new ones.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.after != 0 {
		close(g.release)
		g.after = 0
	}
}

// SetDown makes the mirror fail every request (true) or work again.
func (g *Gate) SetDown(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = down
}

func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	after, release, down := g.after, g.release, g.down
	g.mu.Unlock()
	if down {
		http.Error(w, "mirror down (sugartest gate)", http.StatusServiceUnavailable)
		return
	}
	if after == 0 {
		g.h.ServeHTTP(w, r)
		return
	}
	left := after - rangeStart(r.Header.Get("Range"))
	g.h.ServeHTTP(&holdWriter{ResponseWriter: w, left: max(left, 0), release: release, done: r.Context().Done()}, r)
}

// rangeStart is the first offset of a "bytes=o-" or "bytes=o-e" request,
// 0 for anything else (no Range, a suffix range, several ranges).
func rangeStart(h string) int64 {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0
	}
	first, _, _ := strings.Cut(spec, "-")
	o, err := strconv.ParseInt(first, 10, 64)
	if err != nil || o < 0 {
		return 0
	}
	return o
}

var errGone = errors.New("sugartest gate: client went away while held")

// holdWriter passes left bytes, flushes them to the client (so the daemon
// counts them as progress), then blocks until release or the client goes.
// It hides http.ResponseWriter's ReaderFrom, so the file server writes
// through Write.
type holdWriter struct {
	http.ResponseWriter
	left    int64
	release <-chan struct{}
	done    <-chan struct{}
	held    bool
}

func (h *holdWriter) Write(p []byte) (int, error) {
	if h.held || int64(len(p)) <= h.left {
		h.left -= int64(len(p))
		return h.ResponseWriter.Write(p)
	}
	n, err := h.ResponseWriter.Write(p[:h.left])
	if err != nil {
		return n, err
	}
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	select {
	case <-h.release:
	case <-h.done:
		return n, errGone
	}
	h.held = true
	m, err := h.ResponseWriter.Write(p[n:])
	return n + m, err
}
