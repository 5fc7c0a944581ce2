package deflate

import (
	"bytes"
	"errors"
	"testing"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/errdefs"
)

// edit changes a few lines in the middle of a text, as a new upstream
// version changes a man page.
func edit(b []byte) []byte {
	out := append([]byte{}, b[:len(b)/3]...)
	out = append(out, "\n.SH NEW SECTION\nA paragraph the new version adds.\n"...)
	out = append(out, b[len(b)/3:2*len(b)/3]...)
	return append(out, b[2*len(b)/3+200:]...)
}

func TestDeltaSmallerAndExact(t *testing.T) {
	oldText := text(10, 20000)
	for name, c := range map[string]func([]byte) []byte{"gnu-gzip-9": gnuGzip(t, "-9"), "go-gzip-6": stdGzip(6), "go-zlib-9": stdZlib} {
		t.Run(name, func(t *testing.T) {
			old, nw := c(oldText), c(edit(oldText))
			var plain, puffed bytes.Buffer
			if err := delta.Create(old, bytes.NewReader(nw), &plain); err != nil {
				t.Fatal(err)
			}
			if err := CreateDelta(old, nw, &puffed); err != nil {
				t.Fatal(err)
			}
			if puffed.Len()*3 > plain.Len() {
				t.Errorf("deflate-aware delta %d bytes, plain %d: want at most a third", puffed.Len(), plain.Len())
			}
			t.Logf("gz %d bytes, plain delta %d, deflate-aware %d", len(nw), plain.Len(), puffed.Len())
			var out bytes.Buffer
			if err := ApplyDelta(old, bytes.NewReader(puffed.Bytes()), &out, int64(len(nw))); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), nw) {
				t.Fatal("applied delta differs from the new file")
			}
		})
	}
}

func TestApplyDeltaRejects(t *testing.T) {
	oldText := text(11, 30000)
	old, nw := stdGzip(9)(oldText), stdGzip(9)(edit(oldText))
	var d bytes.Buffer
	if err := CreateDelta(old, nw, &d); err != nil {
		t.Fatal(err)
	}
	otherBase := stdGzip(9)(text(12, 30000))
	cases := map[string]struct {
		old, d []byte
		max    int64
		want   error
	}{
		"base not gzip":  {[]byte("plain text, no gzip here at all"), d.Bytes(), int64(len(nw)), errdefs.ErrInvalidArgument},
		"wrong base":     {otherBase, d.Bytes(), int64(len(nw)), errdefs.ErrCorrupt},
		"cut delta":      {old, d.Bytes()[:d.Len()/2], int64(len(nw)), errdefs.ErrCorrupt},
		"output too big": {old, d.Bytes(), int64(len(nw)) - 1, errdefs.ErrTooLarge},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := ApplyDelta(tc.old, bytes.NewReader(tc.d), &out, tc.max)
			if err == nil && name == "wrong base" && !bytes.Equal(out.Bytes(), nw) {
				return // a wrong base may decode to wrong bytes: the caller's digest check catches it
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCreateDeltaRefusesNonDeflate(t *testing.T) {
	old := stdGzip(9)(text(13, 5000))
	if err := CreateDelta(old, []byte("not compressed at all, just text"), &bytes.Buffer{}); !errors.Is(err, ErrNotDeflate) {
		t.Fatalf("got %v, want ErrNotDeflate", err)
	}
	big := stdGzip(0)(make([]byte, MaxPuff+1))
	if err := CreateDelta(old, big, &bytes.Buffer{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}
