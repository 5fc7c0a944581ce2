package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
)

// big is a manifest of n files in one directory, enough lines for Decode
// to split them between goroutines.
func big(n int) *Manifest {
	m := &Manifest{Header: Header{Channel: "stable", Version: 1}}
	m.Entries = append(m.Entries, Entry{Path: "d", Type: Dir, Mode: 0755})
	for i := range n - 1 {
		m.Entries = append(m.Entries, Entry{Path: fmt.Sprintf("d/f%06d", i), Type: File, Mode: 0644, Size: 3, SHA256: h1})
	}
	return m
}

// lines returns the manifest's lines (header first, without newlines).
func lines(m *Manifest) [][]byte {
	return bytes.Split(bytes.TrimSuffix(m.Bytes(), []byte{'\n'}), []byte{'\n'})
}

func join(ls [][]byte) []byte { return append(bytes.Join(ls, []byte{'\n'}), '\n') }

// TestDecodeChunks decodes manifests large enough to be cut into chunks
// (on every core count from 1 to 4): the entries come back in order, and
// of several bad lines in different chunks the error names the first.
func TestDecodeChunks(t *testing.T) {
	const n = 9000 // four chunks of decodeChunk and more
	m := big(n)
	pol := Policy{MaxEntries: n}
	bad := func(at ...int) []byte {
		ls := lines(m)
		for _, i := range at {
			ls[i] = []byte(`{"p":"x","bogus":1}`)
		}
		return join(ls)
	}
	for _, procs := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprint("procs", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			got, err := Decode(m.Bytes(), pol)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(m.Entries, got.Entries); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
			noLF := bytes.TrimSuffix(m.Bytes(), []byte{'\n'})
			if got, err := Decode(noLF, pol); err != nil || len(got.Entries) != n {
				t.Fatalf("without the last newline: %v", err)
			}
			for _, tc := range []struct {
				name string
				in   []byte
				msg  string
			}{
				{"bad in the last chunk", bad(n - 5), fmt.Sprintf("line %d:", n-4)},
				{"bad in two chunks", bad(n-5, 3000, 7000), "line 3001:"},
				{"bad first entry", bad(1, n/2), "line 2:"},
				{"bad line before one too many", append(bad(4000), []byte(`{"p":"z"}`+"\n")...), "line 4001:"},
				{"one too many", append(m.Bytes(), []byte(`{"p":"z"}`+"\n")...), fmt.Sprintf("line %d: more entries", n+2)},
				{"one too few", join(lines(m)[:n]), fmt.Sprintf("%d entries, header says %d", n-1, n)},
				{"empty line", join(append(lines(m)[:n], nil)), fmt.Sprintf("line %d:", n+1)},
			} {
				_, err := Decode(tc.in, pol)
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("%s: got %v, want ErrInvalidArgument naming %q", tc.name, err, tc.msg)
				}
			}
		})
	}
}

// BenchmarkDecode decodes a 16k-entry manifest, the size of a Go
// toolchain tree.
func BenchmarkDecode(b *testing.B) {
	raw := big(16_000).Bytes()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Decode(raw, Policy{MaxEntries: 16_000}); err != nil {
			b.Fatal(err)
		}
	}
}
