package deflate

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// text is compressible, man-page-like content with some randomness.
func text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"the ", "upgrade ", "slot ", ".TH ", "\\fBboot\\fR ", "pointer\n", "delta ", "of ", "a ", "zstd "}
	var b bytes.Buffer
	for b.Len() < n {
		if r.IntN(20) == 0 {
			fmt.Fprintf(&b, "%x", r.Uint64())
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func stdGzip(level int) func([]byte) []byte {
	return func(p []byte) []byte {
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, level)
		w.Name = "x.txt"
		w.Write(p)
		w.Close()
		return b.Bytes()
	}
}

func stdZlib(p []byte) []byte {
	var b bytes.Buffer
	w, _ := zlib.NewWriterLevel(&b, 9)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func klausGzip(level int) func([]byte) []byte {
	return func(p []byte) []byte {
		var b bytes.Buffer
		w, _ := kgzip.NewWriterLevel(&b, level)
		w.Write(p)
		w.Close()
		return b.Bytes()
	}
}

// gnuGzip runs the gzip command, which Debian's man pages and changelogs
// come from (zlib's deflate, not Go's).
func gnuGzip(t *testing.T, level string) func([]byte) []byte {
	return func(p []byte) []byte {
		cmd := exec.Command("gzip", "-n", level)
		cmd.Stdin = bytes.NewReader(p)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gzip %s: %v", level, err)
		}
		return out
	}
}

func roundTrip(t *testing.T, gz []byte) []byte {
	t.Helper()
	p, err := Puff(gz, 64<<20)
	if err != nil {
		t.Fatalf("Puff: %v", err)
	}
	var out bytes.Buffer
	if err := Huff(bytes.NewReader(p), &out, int64(len(gz))); err != nil {
		t.Fatalf("Huff: %v", err)
	}
	if !bytes.Equal(out.Bytes(), gz) {
		t.Fatalf("re-encoded %d bytes differ from the original %d", out.Len(), len(gz))
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("gzip"); err != nil {
		t.Fatal("the gzip command is needed (Debian: package gzip, always installed)")
	}
	comps := map[string]func([]byte) []byte{
		"go-gzip-1": stdGzip(1), "go-gzip-6": stdGzip(6), "go-gzip-9": stdGzip(9),
		"go-gzip-huffman": stdGzip(gzip.HuffmanOnly), "go-gzip-store": stdGzip(gzip.NoCompression),
		"go-zlib-9": stdZlib, "klauspost-gzip-1": klausGzip(1), "klauspost-gzip-9": klausGzip(9),
		"gnu-gzip-1": gnuGzip(t, "-1"), "gnu-gzip-6": gnuGzip(t, "-6"), "gnu-gzip-9": gnuGzip(t, "-9"),
	}
	inputs := map[string][]byte{
		"empty": {}, "one": {'x'}, "text-5k": text(1, 5000), "text-100k": text(2, 100<<10),
		"zeros": make([]byte, 100000), "random": func() []byte {
			b := make([]byte, 70000)
			rand.NewChaCha8([32]byte{3}).Read(b)
			return b
		}(),
	}
	for cn, c := range comps {
		for in, data := range inputs {
			t.Run(cn+"/"+in, func(t *testing.T) { roundTrip(t, c(data)) })
		}
	}
}

func TestMultiMemberAndTrailingBytes(t *testing.T) {
	gz := append(stdGzip(9)(text(4, 3000)), gnuGzip(t, "-9")(text(5, 4000))...)
	gz = append(gz, 0, 0, 0, 0)
	roundTrip(t, gz)
}

// bitWriter builds hand-made streams for the cases compressors rarely
// produce.
type bitWriter struct {
	b     []byte
	buf   uint32
	nbits uint
}

func (w *bitWriter) bits(v uint32, n uint) {
	w.buf |= v << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.b = append(w.b, byte(w.buf))
		w.buf >>= 8
		w.nbits -= 8
	}
}

func (w *bitWriter) flush() []byte {
	if w.nbits > 0 {
		w.b = append(w.b, byte(w.buf))
	}
	return w.b
}

func zlibWrap(d []byte) []byte { return append(append([]byte{0x78, 0xda}, d...), 0, 0, 0, 0) }

func TestOddStreams(t *testing.T) {
	// A stored block whose padding bits are not zero, then a final fixed
	// block with the literal 'a' and padding of ones: both must come back.
	var fixed encoder
	fixed.build(fixedLit[:288])
	var w bitWriter
	w.bits(0, 3)    // not final, stored
	w.bits(0x1f, 5) // padding 11111
	w.b = append(w.b, 2, 0, 0xfd, 0xff, 'h', 'i')
	w.bits(3, 3) // final, fixed
	w.bits(uint32(fixed.code['a']), 8)
	w.bits(uint32(fixed.code[256]), 7)
	w.bits(0xff>>w.nbits, 8-w.nbits)
	odd := zlibWrap(w.flush())
	roundTrip(t, odd)
	if got, err := inflate(odd[2 : len(odd)-4]); err != nil || string(got) != "hia" {
		t.Fatalf("hand-made stream decodes to %q, %v", got, err)
	}

	// Length 258 sent as code 284 with extra bits 31: valid for zlib, not
	// reproducible from a puff.
	var w3 bitWriter
	w3.bits(3, 3)
	w3.bits(uint32(fixed.code['a']), 8)
	w3.bits(uint32(fixed.code[284]), 8)
	w3.bits(31, 5)
	w3.bits(0, 5) // distance code 0: 1
	w3.bits(uint32(fixed.code[256]), 7)
	if _, err := Puff(zlibWrap(w3.flush()), 1<<20); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("284/31: got %v, want ErrUnsupported", err)
	}
}

func inflate(d []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(flate.NewReader(bytes.NewReader(d)))
	return out.Bytes(), err
}

func TestRejects(t *testing.T) {
	good := stdGzip(9)(text(6, 20000))
	cases := map[string]struct {
		in   []byte
		max  int
		want error
	}{
		"not gzip":     {[]byte("hello, world, not compressed"), 1 << 20, ErrNotDeflate},
		"cut short":    {good[:len(good)/2], 1 << 20, ErrNotDeflate},
		"over the max": {good, 100, ErrTooLarge},
		"block type 3": {zlibWrap([]byte{0x07, 0, 0, 0}), 1 << 20, ErrNotDeflate},
		"far distance": {zlibWrap([]byte{0x03, 0x02, 0}), 1 << 20, ErrNotDeflate},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Puff(tc.in, tc.max); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHuffRejects(t *testing.T) {
	p, err := Puff(stdGzip(9)(text(7, 20000)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Huff(bytes.NewReader(p[:len(p)-20]), &out, 1<<20); !errors.Is(err, ErrBadPuff) {
		t.Errorf("cut puff: got %v, want ErrBadPuff", err)
	}
	if err := Huff(bytes.NewReader(p), &out, 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("small maxOut: got %v, want ErrTooLarge", err)
	}
	if err := Huff(bytes.NewReader([]byte("nope")), &out, 100); !errors.Is(err, ErrBadPuff) {
		t.Errorf("no magic: got %v, want ErrBadPuff", err)
	}
}

// FuzzPuff: puffing never panics and never passes its limit, and whatever
// it accepts re-encodes to exactly the input.
func FuzzPuff(f *testing.F) {
	for i, c := range []func([]byte) []byte{stdGzip(9), stdGzip(1), stdZlib, klausGzip(5), stdGzip(gzip.NoCompression)} {
		f.Add(c(text(uint64(i), 2000)))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 20
		p, err := Puff(in, max)
		if err != nil {
			return
		}
		if len(p) > max {
			t.Fatalf("puff of %d bytes over the limit", len(p))
		}
		var out bytes.Buffer
		if err := Huff(bytes.NewReader(p), &out, int64(len(in))); err != nil {
			t.Fatalf("Huff of an accepted stream: %v", err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("round trip differs")
		}
	})
}

// FuzzHuff: encoding an arbitrary puff never panics nor writes past maxOut.
func FuzzHuff(f *testing.F) {
	for i, c := range []func([]byte) []byte{stdGzip(9), stdZlib, klausGzip(1)} {
		p, _ := Puff(c(text(uint64(i), 1000)), 1<<20)
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var out bytes.Buffer
		err := Huff(bytes.NewReader(p), &out, 1<<16)
		if out.Len() > 1<<16 {
			t.Fatalf("wrote %d bytes past the limit", out.Len())
		}
		if err == nil {
			if q, err := Puff(out.Bytes(), 1<<20); err == nil {
				var again bytes.Buffer
				if err := Huff(bytes.NewReader(q), &again, 1<<16); err != nil || !bytes.Equal(again.Bytes(), out.Bytes()) {
					t.Fatalf("re-puffed output does not round-trip: %v", err)
				}
			}
		}
	})
}

func BenchmarkPuff(b *testing.B) {
	gz := stdGzip(9)(text(20, 1<<20))
	b.SetBytes(int64(len(gz)))
	for b.Loop() {
		if _, err := Puff(gz, 64<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHuff(b *testing.B) {
	gz := stdGzip(9)(text(20, 1<<20))
	p, _ := Puff(gz, 64<<20)
	b.SetBytes(int64(len(gz)))
	for b.Loop() {
		if err := Huff(bytes.NewReader(p), io.Discard, int64(len(gz))); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCodeTables(t *testing.T) {
	for l := 3; l <= 258; l++ {
		c := lenCode(l)
		if l < int(lenBase[c]) || l >= int(lenBase[c])+1<<lenExtra[c] && l != 258 || (l == 258 && c != 28) {
			t.Fatalf("length %d: code %d", l, c)
		}
	}
	for d := 1; d <= 32768; d++ {
		c := distCode(d)
		if d < int(dstBase[c]) || d >= int(dstBase[c])+1<<dstExtra[c] {
			t.Fatalf("distance %d: code %d", d, c)
		}
	}
}
