package fetch

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"laptop.org/upgrade/digest"
)

// The tests run against a real net/http server on [::1] serving a directory,
// with faults a hostile or broken mirror (or a middlebox) produces. Each test
// starts its own server so faults and logs never leak between tests.

type faultKind int

const (
	faultNone         faultKind = iota
	faultCut                    // send n body bytes, then hijack and close the connection
	faultIgnoreRange            // answer 200 with the whole body to a Range request
	faultBadRange               // answer 206 with a Content-Range for byte 0
	faultCorrupt                // flip one byte of the body
	faultEndless                // 200 with no length and bytes until the client leaves
	faultTrickle                // 1 byte per second
	faultDrip                   // 1 byte every 50 ms: under any stall timeout, far under the rate floor
	faultStallHeaders           // headers, then nothing
	faultStatus                 // answer with status n
)

// fault applies to the next `times` matching requests (0: all of them).
type fault struct {
	kind      faultKind
	n         int64
	times     int
	onlyRange bool // apply only to requests with a Range header
}

// request is one line of the server's log.
type request struct {
	Path, Range string
}

type testServer struct {
	dir  string
	URL  string // base URL with a trailing slash
	srv  *http.Server
	sent atomic.Int64 // body bytes written to clients

	mu    sync.Mutex
	fault fault
	queue []fault // faults armed one after another as each is used up
	log   []request
	// delay throttles plain responses: sleep this long per 64 KiB.
	delay atomic.Int64
}

// newServer serves a fresh temp dir on tcp6 [::1]:0.
func newServer(t *testing.T) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("listen on [::1]: %v", err)
	}
	s := &testServer{dir: t.TempDir(), URL: "http://" + ln.Addr().String() + "/"}
	s.srv = &http.Server{Handler: s}
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *testServer) setFault(f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

func (s *testServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.log...)
}

// take returns the fault for this request and uses up one of its times.
func (s *testServer) take(r *http.Request) fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, request{Path: r.URL.Path, Range: r.Header.Get("Range")})
	f := s.fault
	if f.kind == faultNone || f.onlyRange && r.Header.Get("Range") == "" {
		return fault{}
	}
	if f.times > 0 {
		s.fault.times--
		if s.fault.times == 0 {
			s.fault = fault{}
			if len(s.queue) > 0 {
				s.fault, s.queue = s.queue[0], s.queue[1:]
			}
		}
	}
	return f
}

func (s *testServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := s.take(r)
	name := filepath.Join(s.dir, filepath.FromSlash(path.Clean(r.URL.Path)))
	data, err := os.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	cw := &countingWriter{ResponseWriter: w, s: s, ctx: r.Context(), cut: -1}
	switch f.kind {
	case faultCut:
		cw.cut = f.n
	case faultIgnoreRange:
		r.Header.Del("Range")
	case faultBadRange:
		w.Header().Set("Content-Range", "bytes 0-"+itoa(int64(len(data)-1))+"/"+itoa(int64(len(data))))
		w.WriteHeader(http.StatusPartialContent)
		cw.Write(data)
		return
	case faultCorrupt:
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0xff
	case faultEndless:
		w.WriteHeader(http.StatusOK)
		junk := bytes.Repeat([]byte("x"), 32<<10)
		for r.Context().Err() == nil {
			if _, err := cw.Write(junk); err != nil {
				return
			}
		}
		return
	case faultTrickle, faultDrip, faultStallHeaders:
		w.Header().Set("Content-Length", itoa(int64(len(data))))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		gap := time.Second
		if f.kind == faultDrip {
			gap = 50 * time.Millisecond
		}
		for i := 0; f.kind != faultStallHeaders && i < len(data); i++ {
			if _, err := cw.Write(data[i : i+1]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(gap):
			case <-r.Context().Done():
				return
			}
		}
		<-r.Context().Done()
		return
	case faultStatus:
		http.Error(w, http.StatusText(int(f.n)), int(f.n))
		return
	}
	http.ServeContent(cw, r, name, time.Time{}, bytes.NewReader(data))
}

// countingWriter counts body bytes, throttles, and cuts the connection.
type countingWriter struct {
	http.ResponseWriter
	s   *testServer
	ctx context.Context
	n   int64
	cut int64 // hijack and close after this many body bytes (-1: never)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		c := p[:min(len(p), 64<<10)]
		if w.cut >= 0 && w.n+int64(len(c)) >= w.cut {
			c = c[:w.cut-w.n]
			k, _ := w.ResponseWriter.Write(c)
			w.n += int64(k)
			w.s.sent.Add(int64(k))
			w.ResponseWriter.(http.Flusher).Flush()
			conn, _, err := w.ResponseWriter.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return written + k, errors.New("cut by test")
		}
		k, err := w.ResponseWriter.Write(c)
		w.n += int64(k)
		w.s.sent.Add(int64(k))
		written += k
		if err != nil {
			return written, err
		}
		p = p[len(c):]
		if d := time.Duration(w.s.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-w.ctx.Done():
				return written, w.ctx.Err()
			}
		}
	}
	return written, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// content returns size deterministic pseudo-random bytes for seed.
func content(seed uint64, size int) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// addBlob stores data under objects/<digest path> in each dir and returns
// the blob as signed metadata would describe it.
func addBlob(t *testing.T, data []byte, dirs ...string) Blob {
	t.Helper()
	d := digest.Of(data)
	b := Blob{Path: "objects/" + d.Path(), Size: int64(len(data)), SHA256: d}
	for _, dir := range dirs {
		putFile(t, filepath.Join(dir, b.Path), data)
	}
	return b
}

func putFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newFetcher builds a Fetcher with quick backoff for tests; the stall
// timeout is long enough never to fire on a loaded race-detector run.
func newFetcher(t *testing.T, o Options) *Fetcher {
	t.Helper()
	if o.StallTimeout == 0 {
		o.StallTimeout = 20 * time.Second
	}
	o.RetryWaitMin, o.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	o.Logf = t.Logf
	o.Proxy = noProxy
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// noProxy keeps a developer's http_proxy from intercepting loopback tests.
func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

// testCtx bounds a test so a hang is a failure, not a stuck CI job.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkFinal asserts that dir holds exactly the verified final files for
// blobs and no partials.
func checkFinal(t *testing.T, dir string, blobs ...Blob) {
	t.Helper()
	for _, b := range blobs {
		data, err := os.ReadFile(filepath.Join(dir, b.SHA256.String()))
		if err != nil {
			t.Errorf("final %s: %v", b.SHA256, err)
			continue
		}
		if digest.Of(data) != b.SHA256 {
			t.Errorf("final %s has digest %s", b.SHA256, digest.Of(data))
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".partial") {
			t.Errorf("partial left behind: %s", e.Name())
		}
	}
}

// rangeRequests lists the Range headers the server saw for p.
func rangeRequests(s *testServer, p string) []string {
	var out []string
	for _, r := range s.requests() {
		if r.Path == "/"+p {
			out = append(out, r.Range)
		}
	}
	return out
}
