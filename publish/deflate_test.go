package publish

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"testing"

	"laptop.org/upgrade/delta"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, 9)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// The deflate-aware delta is chosen only for gzip files it reproduces
// exactly and only when it is the smaller; anything else keeps the plain
// delta, with no error.
func TestDeflateDeltaChoice(t *testing.T) {
	var text bytes.Buffer
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&text, "line %d of a changelog entry %d\n", i*7%1000, i*i%977)
	}
	oldText := text.Bytes()
	newText := append(append([]byte("a new entry at the top\n"), oldText[:40000]...), oldText[40100:]...)
	old, nw := gz(t, oldText), gz(t, newText)
	var plain bytes.Buffer
	if err := delta.Create(old, bytes.NewReader(nw), &plain); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		old, new []byte
		plain    int
		want     bool
	}{
		{"changed gzip file", old, nw, plain.Len(), true},
		{"plain delta already smaller", old, nw, 10, false},
		{"new file cut short", old, nw[:len(nw)/2], plain.Len(), false},
		{"not compressed", oldText, newText, plain.Len(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := deflateDelta(tc.old, tc.new, tc.plain)
			if ok != tc.want {
				t.Fatalf("deflate-aware delta chosen: %v, want %v", ok, tc.want)
			}
			if ok && len(d) >= tc.plain {
				t.Fatalf("chose %d bytes over a plain delta of %d", len(d), tc.plain)
			}
		})
	}
}
