package e2e

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"laptop.org/upgrade/internal/testrepo"
)

// repoServer serves a repository directory like any static web server
// (http.FileServer: Range, 206, 416), and lets a test slow it down, hold
// requests, replace a file's bytes and count what it sent. The counts are
// what the durability test compares; the rate and holds are how tests land
// a job in a given phase without hooks in the daemon.
type repoServer struct {
	URL string

	fs   http.Handler
	sent atomic.Int64 // body bytes written since the last reset
	rate atomic.Int64 // bytes per second over all requests; 0 = unlimited

	mu       sync.Mutex
	next     time.Time              // when the shared budget allows the next chunk
	hold     func(path string) bool // requests for which this is true wait for release
	released chan struct{}          // closed to let held requests go
	held     int                    // requests waiting now
	replace  map[string][]byte      // URL path -> body served instead of the file
}

// chunk is the unit the rate limit schedules; small enough that progress
// moves several times a second even at a few hundred kB/s.
const chunk = 16 << 10

func newRepoServer(t *testing.T, dir string) *repoServer {
	s := &repoServer{fs: http.FileServer(http.Dir(dir)), released: make(chan struct{}), replace: map[string][]byte{}}
	s.URL = testrepo.Serve(t, s)
	// Held requests must not keep the server's Close waiting.
	t.Cleanup(s.release)
	return s
}

// reset zeroes the byte count (after provisioning, between phases).
func (s *repoServer) reset() { s.sent.Store(0) }

// setRate limits the bytes per second the server sends, across all
// connections; 0 lifts the limit (and wakes writers that wait).
func (s *repoServer) setRate(bps int64) { s.rate.Store(bps) }

// holdRequests makes requests whose path satisfies f wait until release.
func (s *repoServer) holdRequests(f func(path string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = f
	s.released = make(chan struct{})
}

// release lets every held request go and stops holding.
func (s *repoServer) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold = nil
	select {
	case <-s.released:
	default:
		close(s.released)
	}
}

// heldNow is how many requests wait for release.
func (s *repoServer) heldNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// serveBytes makes the server answer path with body instead of the file.
func (s *repoServer) serveBytes(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace[path] = body
}

func (s *repoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hold, released := s.hold, s.released
	body, replaced := s.replace[r.URL.Path]
	if hold != nil && hold(r.URL.Path) {
		s.held++
	} else {
		hold = nil
	}
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-released:
		case <-r.Context().Done():
		}
		s.mu.Lock()
		s.held--
		s.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
	}
	cw := &countingWriter{ResponseWriter: w, s: s, r: r}
	if replaced {
		cw.Header().Set("Content-Type", "application/json")
		cw.Write(body)
		return
	}
	s.fs.ServeHTTP(cw, r)
}

// wait blocks until the shared budget allows n more bytes, re-reading the
// rate so that lifting the limit takes effect at once.
func (s *repoServer) wait(r *http.Request, n int) {
	for {
		bps := s.rate.Load()
		if bps <= 0 {
			return
		}
		s.mu.Lock()
		now := time.Now()
		if s.next.Before(now) {
			s.next = now
		}
		at := s.next
		if !at.After(now) {
			s.next = now.Add(time.Duration(float64(n) / float64(bps) * float64(time.Second)))
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		d := min(at.Sub(now), 50*time.Millisecond)
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
}

// countingWriter counts body bytes and writes them in rate-limited chunks,
// flushing each so the client sees bytes move.
type countingWriter struct {
	http.ResponseWriter
	s *repoServer
	r *http.Request
}

func (w *countingWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunk)
		w.s.wait(w.r, n)
		if w.r.Context().Err() != nil {
			return written, w.r.Context().Err()
		}
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		w.s.sent.Add(int64(m))
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// isIndex matches requests for the timestamp, the first metadata fetched
// after the root chain.
func isIndex(path string) bool { return strings.HasSuffix(path, "timestamp.json") }
