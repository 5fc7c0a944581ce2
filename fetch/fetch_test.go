package fetch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
)

// TestFetchMany is the common case: many blobs of assorted sizes (including
// an empty one and duplicates) in parallel from one mirror, then a second
// call that finds everything final and reads nothing.
func TestFetchMany(t *testing.T) {
	s := newServer(t)
	var blobs []Blob
	var total int64
	for i := range 24 {
		b := addBlob(t, content(uint64(i), i*i*997), s.dir)
		blobs = append(blobs, b)
		total += b.Size
	}
	blobs = append(blobs, blobs[3], blobs[7]) // listed twice: fetched once

	var mu sync.Mutex
	var last [2]int64
	f := newFetcher(t, Options{Mirrors: []string{s.URL}, Parallel: 3, Progress: func(done, tot int64) {
		mu.Lock()
		defer mu.Unlock()
		last = [2]int64{done, tot}
	}})
	dir := t.TempDir()
	if err := f.Fetch(testCtx(t), dir, blobs); err != nil {
		t.Fatal(err)
	}
	checkFinal(t, dir, blobs...)
	if diff := cmp.Diff([2]int64{total, total}, last); diff != "" {
		t.Errorf("last progress (-want +got):\n%s", diff)
	}
	if got := f.BytesReceived(); got != total {
		t.Errorf("BytesReceived = %d, want %d", got, total)
	}

	n := len(s.requests())
	if err := f.Fetch(testCtx(t), dir, blobs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([2]int64{0, 0}, last); diff != "" {
		t.Errorf("progress when all final (-want +got):\n%s", diff)
	}
	if got := len(s.requests()); got != n {
		t.Errorf("second Fetch made %d requests, want none", got-n)
	}
}

// TestFetchFileMirror serves from a file:// repository (a USB stick), first
// behind a dead HTTP mirror so failover to file works, then resuming a
// partial from the file.
func TestFetchFileMirror(t *testing.T) {
	repo := t.TempDir()
	whole := addBlob(t, content(1, 300<<10), repo)
	half := content(2, 200<<10)
	resumed := addBlob(t, half, repo)
	short := addBlob(t, content(3, 1000), t.TempDir())
	putFile(t, filepath.Join(repo, short.Path), content(3, 999))

	dir := t.TempDir()
	putFile(t, filepath.Join(dir, resumed.SHA256.String()+".partial"), half[:77777])
	f := newFetcher(t, Options{Mirrors: []string{"http://[::1]:1/", "file://" + repo}})
	if err := f.Fetch(testCtx(t), dir, []Blob{whole, resumed}); err != nil {
		t.Fatal(err)
	}
	checkFinal(t, dir, whole, resumed)
	if got, want := f.BytesReceived(), whole.Size+resumed.Size-77777; got != want {
		t.Errorf("BytesReceived = %d, want %d (resume from the partial)", got, want)
	}

	err := f.Fetch(testCtx(t), dir, []Blob{short})
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Errorf("truncated file behind a dead mirror: got %v, want ErrNetwork", err)
	}
	f2 := newFetcher(t, Options{Mirrors: []string{"file://" + repo}})
	if err := f2.Fetch(testCtx(t), dir, []Blob{short}); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("truncated file: got %v, want ErrCorrupt", err)
	}
}

// TestFetchBadMirrors covers mirrors that serve wrong bytes: each case says
// what mirror 1 does and whether a good mirror 2 exists. Bad bytes must
// never be published and never seed the good mirror's download.
func TestFetchBadMirrors(t *testing.T) {
	tests := []struct {
		name    string
		fault   fault
		good2   bool
		wantErr error // nil: success from mirror 2
	}{
		{"corrupt then good", fault{kind: faultCorrupt}, true, nil},
		{"corrupt only", fault{kind: faultCorrupt}, false, errdefs.ErrCorrupt},
		{"endless then good", fault{kind: faultEndless}, true, nil},
		{"endless only", fault{kind: faultEndless}, false, errdefs.ErrTooLarge},
		{"404 then good", fault{kind: faultStatus, n: 404}, true, nil},
		{"500 only", fault{kind: faultStatus, n: 500}, false, errdefs.ErrNetwork},
		{"trickle only", fault{kind: faultTrickle}, false, errdefs.ErrNetwork},
		{"drip under the stall timeout only", fault{kind: faultDrip}, false, errdefs.ErrNetwork},
		{"drip then good", fault{kind: faultDrip}, true, nil},
		{"stall after headers then good", fault{kind: faultStallHeaders}, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s1, s2 := newServer(t), newServer(t)
			b := addBlob(t, content(9, 1<<20), s1.dir, s2.dir)
			s1.setFault(tc.fault)
			mirrors := []string{s1.URL}
			if tc.good2 {
				mirrors = append(mirrors, s2.URL)
			}
			// A short stall timeout: the trickle and stall cases must end
			// in an error, not a hang (the test context bounds it).
			f := newFetcher(t, Options{Mirrors: mirrors, StallTimeout: 500 * time.Millisecond, Retries: 1})
			dir := t.TempDir()
			err := f.Fetch(testCtx(t), dir, []Blob{b})
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkFinal(t, dir, b)
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), b.Path) {
				t.Fatalf("got %v, want %v naming %s", err, tc.wantErr, b.Path)
			}
			if _, err := os.Stat(filepath.Join(dir, b.SHA256.String())); !os.IsNotExist(err) {
				t.Errorf("final file exists after failure: %v", err)
			}
		})
	}
}

// TestFetchRetriesThenFailsOver checks that transient 5xx answers are
// retried on the same mirror, the count bounded by Retries.
func TestFetchRetriesThenFailsOver(t *testing.T) {
	s := newServer(t)
	b := addBlob(t, content(4, 5000), s.dir)
	s.setFault(fault{kind: faultStatus, n: 503, times: 2})
	f := newFetcher(t, Options{Mirrors: []string{s.URL}, Retries: 2})
	dir := t.TempDir()
	if err := f.Fetch(testCtx(t), dir, []Blob{b}); err != nil {
		t.Fatal(err)
	}
	checkFinal(t, dir, b)
	if diff := cmp.Diff([]string{"", "", ""}, rangeRequests(s, b.Path)); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestFetchInvalid rejects metadata that could make the client request
// something other than what was signed.
func TestFetchInvalid(t *testing.T) {
	f := newFetcher(t, Options{Mirrors: []string{"http://[::1]:1/"}})
	d := digest.Of([]byte("x"))
	tests := []struct {
		name string
		blob Blob
	}{
		{"dotdot", Blob{Path: "objects/../secret", Size: 1, SHA256: d}},
		{"absolute", Blob{Path: "/etc/passwd", Size: 1, SHA256: d}},
		{"query", Blob{Path: "objects/a?x=1", Size: 1, SHA256: d}},
		{"fragment", Blob{Path: "objects/a#x", Size: 1, SHA256: d}},
		{"percent", Blob{Path: "objects/%2e%2e/a", Size: 1, SHA256: d}},
		{"empty segment", Blob{Path: "objects//a", Size: 1, SHA256: d}},
		{"dot", Blob{Path: "./a", Size: 1, SHA256: d}},
		{"backslash", Blob{Path: `objects\a`, Size: 1, SHA256: d}},
		{"empty", Blob{Path: "", Size: 1, SHA256: d}},
		{"negative size", Blob{Path: "a", Size: -1, SHA256: d}},
		{"no digest", Blob{Path: "a", Size: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := f.Fetch(testCtx(t), t.TempDir(), []Blob{tc.blob})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// TestZoneReachesDialer shows that a link-local mirror's zone survives URL
// parsing and arrives at the dialer unescaped: the dial error names the
// address as the kernel was asked for it. (Dialing a real fe80:: address needs a network
// namespace; that test lives elsewhere.)
func TestZoneReachesDialer(t *testing.T) {
	f := newFetcher(t, Options{Mirrors: []string{"http://[fe80::1%25nosuchif0]:8080/"}, Retries: -1})
	_, _, err := f.Get(testCtx(t), "index", 100, nil)
	if !errors.Is(err, errdefs.ErrNetwork) || !strings.Contains(err.Error(), "dial tcp [fe80::1%nosuchif0]:8080") {
		t.Errorf("got %v, want a dial error for the zone's interface", err)
	}
}

// TestPartialLocked keeps two downloaders (processes or Fetch calls) from
// interleaving writes into one partial.
func TestPartialLocked(t *testing.T) {
	dir := t.TempDir()
	b := Blob{Path: "a", Size: 10, SHA256: digest.Of([]byte("0123456789"))}
	p, err := openPartial(dir, b, func(int64) {})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if _, err := openPartial(dir, b, func(int64) {}); !errors.Is(err, errdefs.ErrBusy) {
		t.Errorf("second open: got %v, want ErrBusy", err)
	}
}

// TestFileMirrorFifo: a file:// mirror whose index or blob is a fifo (a
// hostile USB stick) must fail over at once, not wait for a writer.
func TestFileMirrorFifo(t *testing.T) {
	bad, good := t.TempDir(), t.TempDir()
	blob := addBlob(t, content(4, 5000), good)
	putFile(t, filepath.Join(good, "index.json"), []byte("index"))
	for _, p := range []string{"index.json", blob.Path} {
		full := filepath.Join(bad, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := syscall.Mkfifo(full, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := newFetcher(t, Options{Mirrors: []string{"file://" + bad, "file://" + good}})
	b, mirror, err := f.Get(testCtx(t), "index.json", 100, nil)
	if err != nil || string(b) != "index" || mirror != "file://"+good+"/" {
		t.Fatalf("Get = %q from %s, %v; want the good mirror's index", b, mirror, err)
	}
	dir := t.TempDir()
	if err := f.Fetch(testCtx(t), dir, []Blob{blob}); err != nil {
		t.Fatal(err)
	}
	checkFinal(t, dir, blob)
	f2 := newFetcher(t, Options{Mirrors: []string{"file://" + bad}})
	if _, _, err := f2.Get(testCtx(t), "index.json", 100, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("fifo only: got %v, want an error saying it is not a regular file", err)
	}
}

// TestNewRejectsBadMirrors: New refuses no mirrors and a bad one (the
// table of mirror URLs is mirror.TestParse).
func TestNewRejectsBadMirrors(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("New without mirrors: %v", err)
	}
	if _, err := New(Options{Mirrors: []string{"http://[::1]/", "gopher://x/"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("New with a bad mirror: %v", err)
	}
}
