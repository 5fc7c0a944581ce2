package hostile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
)

// TestBrokenRoot: a machine whose slots or current link are damaged gets a
// clear error naming the problem, and the active slot is not touched.
func TestBrokenRoot(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, root string)
		class  error
		msg    string
	}{
		{"inactive slot is a file", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "b")))
			must(t, os.WriteFile(filepath.Join(root, "b"), []byte("x"), 0644))
		}, errdefs.ErrFailedPrecondition, "slot b"},
		{"inactive slot is a symlink", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "b")))
			must(t, os.Symlink("../canary", filepath.Join(root, "b")))
		}, errdefs.ErrFailedPrecondition, "is not a directory"},
		{"current points nowhere", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "current")))
			must(t, os.Symlink("c", filepath.Join(root, "current")))
		}, errdefs.ErrFailedPrecondition, `points at "c"`},
		{"current missing", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "current")))
		}, errdefs.ErrFailedPrecondition, "current"},
		{"active slot's manifest record cut short", func(t *testing.T, root string) {
			// Decoded while the target is fetched: the error still comes
			// before anything is written.
			p := filepath.Join(root, "var/lib/upgrade/slots/a/manifest")
			b, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(p, b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1], 0644))
		}, errdefs.ErrInvalidArgument, "active slot a"},
		{"inactive slot read-only", func(t *testing.T, root string) {
			b := filepath.Join(root, "b")
			must(t, unix.Mount(b, b, "", unix.MS_BIND, ""))
			t.Cleanup(func() { unix.Unmount(b, unix.MNT_DETACH) })
			must(t, unix.Mount("", b, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""))
		}, unix.EROFS, "read-only file system"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 1)
			tc.break_(t, w.root)
			w.before = w.outside0()
			_, err := engine.Upgrade(context.Background(), w.config(), engine.Options{})
			wantErr(t, err, tc.class, tc.msg)
			t.Logf("refused: %v", err)
			if diff := cmpNodes(w.before, w.outside0()); diff != "" {
				t.Errorf("changed (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("inactive slot missing", func(t *testing.T) {
		w := newWorld(t, 1)
		must(t, os.Remove(filepath.Join(w.root, "b")))
		w.before = w.outside()
		if _, err := engine.Upgrade(context.Background(), w.config(), engine.Options{}); err != nil {
			t.Fatalf("a missing inactive slot is recreated, yet: %v", err)
		}
		w.checkUntouched()
	})
}

// outside0 snapshots the root's slot a and the canary (for roots whose
// current link is broken, where outside cannot tell the slots apart).
func (w *world) outside0() map[string]node {
	return snapshot(w.t, w.dir, map[string]bool{filepath.Join(w.root, "b"): true, w.cfg.Root.StateDir(): true})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestHugeManifest: a version with 1,000,000 entries is refused before its
// manifest is fetched (the signed index states the count), and a manifest
// whose header claims more than the index said is refused at the header,
// without allocating for the claim. The decoded cost per entry is measured
// on a smaller manifest and logged.
func TestHugeManifest(t *testing.T) {
	w := newWorld(t, 1)
	f := w.fix
	x := f.parsedIndex(t)
	v3 := x.Versions[1]
	v3.Version, v3.Entries = 3, 1_000_000
	x.Versions = append(x.Versions, v3)
	w.srv.sign(t, x, f.key)
	w.srv.sent.Store(0)
	_, err := engine.Upgrade(context.Background(), w.config(), engine.Options{})
	wantErr(t, err, errdefs.ErrTooLarge, "1000000 entries")
	t.Logf("refused: %v", err)
	w.checkUntouched()

	// The index says 40 entries, the manifest's header 1,000,000.
	m := bigManifest(1_000_000)
	m.Entries = m.Entries[:40]
	raw := m.Bytes()
	raw = bytes.Replace(raw, []byte(`"entries":40`), []byte(`"entries":1000000`), 1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = manifest.Decode(raw, manifest.Policy{AllowSetuid: true})
	runtime.ReadMemStats(&after)
	wantErr(t, err, errdefs.ErrTooLarge, "1000000 entries, limit")
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("refusing a header's claim allocated %d bytes", alloc)
	}

	// Cost per entry, measured at 100,000 entries.
	const n = 100_000
	raw = bigManifest(n).Bytes()
	got, err := manifest.Decode(raw, manifest.Policy{AllowSetuid: true, MaxEntries: n})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	runtime.KeepAlive(got)
	got = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	live := int64(before.HeapAlloc) - int64(after.HeapAlloc) // what dropping the decoded manifest freed
	t.Logf("manifest of %d entries: %d bytes encoded (%d B/entry), %d bytes live decoded (%d B/entry); the engine holds both, so %d entries (manifest.DefaultMaxEntries) cost about %d MiB",
		n, len(raw), len(raw)/n, live, live/n, manifest.DefaultMaxEntries, (int64(len(raw))+live)/n*int64(manifest.DefaultMaxEntries)>>20)
	fmt.Printf("BENCH manifest_bytes_per_entry %d\n", (int64(len(raw))+live)/n)
}

// bigManifest is an OS-like manifest of n entries: directories of 99 files.
func bigManifest(n int) *manifest.Manifest {
	m := &manifest.Manifest{Header: manifest.Header{Channel: "stable", Version: 3}}
	m.Entries = append(m.Entries, manifest.Entry{Path: "usr", Type: manifest.Dir, Mode: 0755})
	for d := 0; len(m.Entries) < n; d++ {
		dir := fmt.Sprintf("usr/lib%05d", d)
		m.Entries = append(m.Entries, manifest.Entry{Path: dir, Type: manifest.Dir, Mode: 0755})
		for i := 0; i < 99 && len(m.Entries) < n; i++ {
			p := dir + "/" + strings.Repeat("x", 20) + fmt.Sprintf("-%03d.so", i)
			m.Entries = append(m.Entries, manifest.Entry{Path: p, Type: manifest.File, Mode: 0644, Size: 1000, SHA256: digest.Of([]byte(p))})
		}
	}
	return m
}
