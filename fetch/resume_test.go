package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"laptop.org/upgrade/errdefs"
)

const mib = 1 << 20

// TestResume drives the Range protocol through the faults a server or cache
// produces. Each case sets up a cut connection or a partial left by an
// earlier run, and states the Range headers the server must have seen.
func TestResume(t *testing.T) {
	const size = 4 * mib
	tests := []struct {
		name      string
		partial   int  // bytes of a correct partial left by an earlier run
		junk      bool // the partial is wrong (power loss garbage)
		faults    []fault
		wantRange []string
		// wantReceived is what the client must have read off the wire.
		wantReceived int64
	}{{
		name:         "cut mid-body resumes from the cut",
		faults:       []fault{{kind: faultCut, n: 1234567, times: 1}},
		wantRange:    []string{"", "bytes=1234567-"},
		wantReceived: size,
	}, {
		name:         "server ignores Range after a cut",
		faults:       []fault{{kind: faultCut, n: mib, times: 1}, {kind: faultIgnoreRange, times: 1}},
		wantRange:    []string{"", "bytes=1048576-"},
		wantReceived: size + mib,
	}, {
		name:         "partial from an earlier run",
		partial:      3 * mib,
		wantRange:    []string{"bytes=3145728-"},
		wantReceived: size - 3*mib,
	}, {
		name:         "wrong Content-Range starts over",
		partial:      mib,
		faults:       []fault{{kind: faultBadRange, onlyRange: true}},
		wantRange:    []string{"bytes=1048576-", ""},
		wantReceived: size,
	}, {
		name:         "416 starts over",
		partial:      mib,
		faults:       []fault{{kind: faultStatus, n: 416, onlyRange: true}},
		wantRange:    []string{"bytes=1048576-", ""},
		wantReceived: size,
	}, {
		name:         "garbage partial is refetched from the same mirror",
		partial:      2 * mib,
		junk:         true,
		wantRange:    []string{"bytes=2097152-", ""},
		wantReceived: size - 2*mib + size,
	}, {
		name:         "partial longer than the blob is dropped",
		partial:      size + 10,
		wantRange:    []string{""},
		wantReceived: size,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			data := content(7, size)
			b := addBlob(t, data, s.dir)
			dir := t.TempDir()
			if tc.partial > 0 {
				p := append(data[:min(tc.partial, size):min(tc.partial, size)], make([]byte, max(0, tc.partial-size))...)
				if tc.junk {
					p = content(8, tc.partial)
				}
				putFile(t, filepath.Join(dir, b.SHA256.String()+".partial"), p)
			}
			// Faults are served in order: the next one is armed when the
			// previous one has been used up.
			f := newFetcher(t, Options{Mirrors: []string{s.URL}, Logf: t.Logf})
			armFaults(s, tc.faults)
			if err := f.Fetch(testCtx(t), dir, []Blob{b}); err != nil {
				t.Fatal(err)
			}
			checkFinal(t, dir, b)
			if diff := cmp.Diff(tc.wantRange, rangeRequests(s, b.Path)); diff != "" {
				t.Errorf("Range headers (-want +got):\n%s", diff)
			}
			if got := f.BytesReceived(); got != tc.wantReceived {
				t.Errorf("BytesReceived = %d, want %d", got, tc.wantReceived)
			}
			if got := s.sent.Load(); got >= 2*size+size/2 {
				t.Errorf("server sent %d bytes for a %d-byte blob", got, size)
			}
		})
	}
}

// armFaults installs faults one after another: each with times > 0 is
// replaced by the next once used up.
func armFaults(s *testServer, faults []fault) {
	if len(faults) == 0 {
		return
	}
	s.mu.Lock()
	s.queue = append([]fault(nil), faults[1:]...)
	s.mu.Unlock()
	s.setFault(faults[0])
}

// TestCancelLeavesResumablePartial cancels a throttled download midway:
// Fetch returns ErrCancelled, the partial stays, and the next call resumes
// from it with Range instead of starting over.
func TestCancelLeavesResumablePartial(t *testing.T) {
	const size = 8 * mib
	s := newServer(t)
	b := addBlob(t, content(5, size), s.dir)
	s.delay.Store(int64(2e6)) // 2ms per 64 KiB: ~32 MB/s, the cancel lands mid-body
	dir := t.TempDir()

	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	f := newFetcher(t, Options{Mirrors: []string{s.URL}, Progress: func(done, total int64) {
		if done > mib {
			cancel()
		}
	}})
	err := f.Fetch(ctx, dir, []Blob{b})
	if !errors.Is(err, errdefs.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want ErrCancelled and context.Canceled", err)
	}
	fi, err := os.Stat(filepath.Join(dir, b.SHA256.String()+".partial"))
	if err != nil || fi.Size() < mib || fi.Size() >= size {
		t.Fatalf("partial after cancel: %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, b.SHA256.String())); !os.IsNotExist(err) {
		t.Fatalf("final exists after cancel: %v", err)
	}

	s.delay.Store(0)
	f2 := newFetcher(t, Options{Mirrors: []string{s.URL}})
	if err := f2.Fetch(testCtx(t), dir, []Blob{b}); err != nil {
		t.Fatal(err)
	}
	checkFinal(t, dir, b)
	want := []string{"", "bytes=" + itoa(fi.Size()) + "-"}
	if diff := cmp.Diff(want, rangeRequests(s, b.Path)); diff != "" {
		t.Errorf("Range headers (-want +got):\n%s", diff)
	}
}

// TestGet fetches the signed index: a mirror whose bytes fail the check (a
// malicious or stale mirror) must lose to the next one, and the error class
// when all fail says why.
func TestGet(t *testing.T) {
	good, evil := []byte("signed index v2"), []byte("forged index")
	errSig := errors.New("bad signature")
	check := func(b []byte) error {
		if string(b) != string(good) {
			return errSig
		}
		return nil
	}
	tests := []struct {
		name    string
		serve   [][]byte // per mirror; nil = 404
		max     int64
		want    int // index of the mirror that wins; -1 = error
		wantErr error
	}{
		{"first good", [][]byte{good, evil}, 100, 0, nil},
		{"forged then good", [][]byte{evil, good}, 100, 1, nil},
		{"missing then good", [][]byte{nil, good}, 100, 1, nil},
		{"all forged", [][]byte{evil, evil}, 100, -1, errSig},
		{"too large then good", [][]byte{append(evil, make([]byte, 200)...), good}, 100, 1, nil},
		{"all too large", [][]byte{make([]byte, 101)}, 100, -1, errdefs.ErrTooLarge},
		{"all missing", [][]byte{nil, nil}, 100, -1, errdefs.ErrNetwork},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mirrors []string
			for _, body := range tc.serve {
				s := newServer(t)
				if body != nil {
					putFile(t, filepath.Join(s.dir, "index.sig"), body)
				}
				mirrors = append(mirrors, s.URL)
			}
			f := newFetcher(t, Options{Mirrors: mirrors})
			got, from, err := f.Get(testCtx(t), "index.sig", tc.max, check)
			if tc.want < 0 {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{string(good), mirrors[tc.want]}, []string{string(got), from}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
