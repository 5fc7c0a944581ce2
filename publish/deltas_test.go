package publish

import (
	"hash/maphash"
	"math/rand"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/manifest"
)

func TestFamilyKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"src/vendor/x/text/unicode/norm/tables15.0.0.go", "src/vendor/x/text/unicode/norm/tables#.#.#.go"},
		{"lib/libfoo.so.3", "lib/libfoo.so.#"},
		{"usr/bin/python3.11", "usr/bin/python#.#"},
		{"README", "README"},
	} {
		if got := familyKey(tc.in); got != tc.want {
			t.Errorf("familyKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A new path gets a delta from the previous version's file of the same
// name family and similar size; same-path pairs come from every previous
// version; unrelated or tiny files get none.
func TestDeltaPairs(t *testing.T) {
	d := func(s string) digest.Digest { return digest.Of([]byte(s)) }
	f := func(p, content string, size int64) manifest.Entry {
		return manifest.Entry{Path: p, Type: manifest.File, Mode: 0644, Size: size, SHA256: d(content)}
	}
	v1 := &manifest.Manifest{Entries: []manifest.Entry{
		f("norm/tables13.0.0.go", "t13", 300_000), f("norm/tables15.0.0.go", "t15", 400_000),
		f("tool", "tool-v1", 5000), f("tiny", "tiny-v1", 10), f("other15.go", "o15", 100),
	}}
	v2 := &manifest.Manifest{Entries: []manifest.Entry{
		f("norm/tables15.0.0.go", "t15", 400_000), f("norm/tables17.0.0.go", "t17", 410_000),
		f("tool", "tool-v2", 5000), f("tiny", "tiny-v2", 10), f("other17.go", "o17", 90_000),
	}}
	v0 := &manifest.Manifest{Entries: []manifest.Entry{f("tool", "tool-v0", 4000)}}
	got := map[string]bool{}
	for _, p := range deltaPairs(v2, []*manifest.Manifest{v1, v0}) {
		got[p.path+" from "+map[digest.Digest]string{d("t15"): "t15", d("t13"): "t13", d("tool-v1"): "tool-v1", d("tool-v0"): "tool-v0", d("o15"): "o15"}[p.from]] = true
	}
	want := map[string]bool{
		"norm/tables17.0.0.go from t15": true, // closest in size in its family
		"tool from tool-v1":             true,
		"tool from tool-v0":             true, // same path, older version
		// tiny: below minDeltaSize; other17.go: its relative is 900x smaller
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pairs (-want +got)\n%s", diff)
	}
}

// Content-defined chunks survive an insertion: most chunks of the shifted
// copy are found in the original.
func TestChunkSetSurvivesShifts(t *testing.T) {
	b := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(b)
	shifted := append(append(append([]byte{}, b[:1000]...), []byte("inserted bytes shift the rest")...), b[1000:]...)
	seed := maphash.MakeSeed()
	a, s := chunkSet(b, seed), chunkSet(shifted, seed)
	var shared, total int64
	for h, n := range s {
		total += int64(n)
		if _, ok := a[h]; ok {
			shared += int64(n)
		}
	}
	if shared < total*9/10 {
		t.Fatalf("only %d of %d bytes in shared chunks after a shift", shared, total)
	}
}
