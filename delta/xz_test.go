package delta

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"

	"laptop.org/upgrade/errdefs"
)

// xzCLI compresses b with the xz command and the given arguments.
func xzCLI(t testing.TB, b []byte, args ...string) []byte {
	t.Helper()
	xz, err := exec.LookPath("xz")
	if err != nil {
		t.Fatal("xz command missing (scripts/deps.d/base.txt; run make deps)")
	}
	cmd := exec.Command(xz, append([]string{"-q", "-c", "-T1", "--check=crc32"}, args...)...)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The client decodes what the publisher's xz command makes (with and
// without the x86 filter), ends at the signed size, refuses a dictionary
// larger than it allows before allocating it, and reports damage as
// corrupt.
func TestXZReader(t *testing.T) {
	exe, err := os.ReadFile("/bin/true") // an x86 executable: the filter's input
	if err != nil {
		t.Fatal(err)
	}
	text := sample(200_000, 21)
	damaged := xzCLI(t, text, "--lzma2=preset=6,dict=256KiB")
	damaged[len(damaged)/2] ^= 0x55
	for _, tc := range []struct {
		name    string
		stream  []byte
		dictMax uint32
		maxOut  int64
		want    []byte
		err     error
	}{
		{"text", xzCLI(t, text, "--lzma2=preset=6,dict=256KiB"), 1 << 20, int64(len(text)), text, nil},
		{"x86 filter", xzCLI(t, exe, "--x86", "--lzma2=preset=9e,dict=1MiB"), 1 << 20, int64(len(exe)), exe, nil},
		{"over the signed size", xzCLI(t, text, "--lzma2=preset=6,dict=256KiB"), 1 << 20, 1000, nil, errdefs.ErrTooLarge},
		{"dictionary over the limit", xzCLI(t, text, "--lzma2=preset=6,dict=16MiB"), 8 << 20, int64(len(text)), nil, errdefs.ErrCorrupt},
		{"damaged", damaged, 1 << 20, int64(len(text)), nil, errdefs.ErrCorrupt},
		{"not xz", []byte("this is not an xz stream at all"), 1 << 20, 100, nil, errdefs.ErrCorrupt},
		{"truncated", xzCLI(t, text, "--lzma2=preset=6,dict=256KiB")[:500], 1 << 20, int64(len(text)), nil, errdefs.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewXZReader(bytes.NewReader(tc.stream), tc.dictMax, tc.maxOut)
			if tc.name == "dictionary over the limit" && err == nil {
				t.Fatal("a dictionary over the limit passed NewXZReader: it would be allocated on the first Read")
			}
			var got []byte
			if err == nil {
				got, err = io.ReadAll(r)
				r.Close()
			}
			if tc.err != nil {
				t.Log(err)
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("decoded %d bytes, not the %d compressed", len(got), len(tc.want))
			}
		})
	}
}

// FuzzXZReader feeds arbitrary streams to the xz decoder: it must fail
// cleanly (a pack's bytes are checked against the signed digest first, but
// a publisher's bug must not crash a client), never panic, never take a
// dictionary over the limit, and never decode past the cap.
func FuzzXZReader(f *testing.F) {
	text := sample(20_000, 22)
	f.Add(xzCLI(f, text, "--lzma2=preset=6,dict=64KiB"))
	f.Add(xzCLI(f, text[:3000], "--x86", "--lzma2=preset=9e,dict=64KiB"))
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r, err := NewXZReader(bytes.NewReader(stream), 1<<20, 1<<16)
		if err != nil {
			return
		}
		defer r.Close()
		n, _ := io.Copy(io.Discard, r)
		if n > 1<<16 {
			t.Fatalf("decoded %d bytes over the cap", n)
		}
	})
}
