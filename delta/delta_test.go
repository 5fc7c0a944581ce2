package delta

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"

	"laptop.org/upgrade/errdefs"
)

func sample(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	words := [][]byte{[]byte("alpha "), []byte("beta "), []byte("gamma\n"), []byte("delta\t"), []byte{0, 1, 2, 3}}
	var b bytes.Buffer
	for b.Len() < n {
		b.Write(words[r.Intn(len(words))])
		if r.Intn(50) == 0 {
			var x [16]byte
			r.Read(x[:])
			b.Write(x[:])
		}
	}
	return b.Bytes()[:n]
}

func mutate(old []byte) []byte {
	n := append([]byte(nil), old[:len(old)/3]...)
	n = append(n, []byte("an insertion that was not there before")...)
	n = append(n, old[len(old)/3+100:]...)
	return append(n, sample(5000, 99)...)
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new []byte
	}{
		{"small edit", sample(100_000, 1), mutate(sample(100_000, 1))},
		{"multi piece", sample(9<<20, 2), mutate(sample(9<<20, 2))},
		{"empty new", sample(1000, 3), nil},
		{"unrelated", sample(50_000, 4), sample(60_000, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d bytes.Buffer
			if err := Create(tc.old, bytes.NewReader(tc.new), &d); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := Apply(tc.old, bytes.NewReader(d.Bytes()), &out, int64(len(tc.new)))
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(tc.new)) || !bytes.Equal(out.Bytes(), tc.new) {
				t.Fatalf("output differs: %d bytes, want %d", n, len(tc.new))
			}
			if tc.name == "small edit" && d.Len() > len(tc.new)/20 {
				t.Errorf("delta of %d bytes for a small edit of %d bytes", d.Len(), len(tc.new))
			}
		})
	}
}

func TestApplyRejects(t *testing.T) {
	old := sample(200_000, 7)
	nw := mutate(old)
	var d bytes.Buffer
	if err := Create(old, bytes.NewReader(nw), &d); err != nil {
		t.Fatal(err)
	}
	t.Run("output over the signed size", func(t *testing.T) {
		_, err := Apply(old, bytes.NewReader(d.Bytes()), &bytes.Buffer{}, int64(len(nw)-1))
		if !errors.Is(err, errdefs.ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("frame over a small signed size", func(t *testing.T) {
		// The signed size picks a small frame buffer; the decoder grows
		// the output onto the heap for the frame's declared size before
		// the size check fails. Returning that set to its pool once
		// panicked (the grown buffer was larger than the mapping).
		old := sample(1<<20, 7)
		nw := mutate(sample(2<<20, 8))
		var d bytes.Buffer
		if err := Create(old, bytes.NewReader(nw), &d); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(old, &d, &bytes.Buffer{}, 100_000); !errors.Is(err, errdefs.ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("tampered patch", func(t *testing.T) {
		bad := append([]byte(nil), d.Bytes()...)
		bad[len(bad)/2] ^= 0xff
		var out bytes.Buffer
		_, err := Apply(old, bytes.NewReader(bad), &out, int64(len(nw)))
		if err == nil && bytes.Equal(out.Bytes(), nw) {
			t.Fatal("tampered patch produced the right output")
		}
	})
	t.Run("no base", func(t *testing.T) {
		if _, err := Apply(nil, bytes.NewReader(d.Bytes()), &bytes.Buffer{}, 10); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestCompressRoundTrip(t *testing.T) {
	in := sample(3<<20, 11)
	var z bytes.Buffer
	if err := Compress(bytes.NewReader(in), &z); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Decompress(bytes.NewReader(z.Bytes()), &out, int64(len(in))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatal("differs")
	}
	if _, err := Decompress(bytes.NewReader(z.Bytes()), &bytes.Buffer{}, 100); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("cap: got %v", err)
	}
}

// FuzzApply feeds arbitrary patches: the decoder must fail cleanly, never
// panic, and never exceed the output cap.
func FuzzApply(f *testing.F) {
	old := sample(10_000, 21)
	var d bytes.Buffer
	if err := Create(old, bytes.NewReader(mutate(old)), &d); err != nil {
		f.Fatal(err)
	}
	f.Add(d.Bytes())
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, patch []byte) {
		var out bytes.Buffer
		n, err := Apply(old, bytes.NewReader(patch), &out, 1<<16)
		if err == nil && n > 1<<16 {
			t.Fatalf("wrote %d bytes over the cap", n)
		}
	})
}
