package delta

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"laptop.org/upgrade/errdefs"
)

// The zstd command's deltas must decode with Apply (the client's pure-Go
// decoder and window limit), for one base and for a two-base dictionary.
func TestCreateCLI(t *testing.T) {
	zstd := CLI()
	if zstd == "" {
		t.Fatal("zstd command missing (scripts/deps.d/base.txt; run make deps)")
	}
	old := sample(300_000, 11)
	other := sample(200_000, 12)
	newer := append(mutate(old), other[:150_000]...) // half of it only in the second base
	for _, tc := range []struct {
		name  string
		bases [][]byte
		new   []byte
	}{
		{"one base", [][]byte{old}, mutate(old)},
		{"two bases", [][]byte{old, other}, newer},
		{"multi piece", [][]byte{sample(PieceSize+(256<<10), 13)}, mutate(sample(PieceSize+(256<<10), 13))},
		{"empty new", [][]byte{old}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dict := Dict(tc.bases...)
			path := filepath.Join(t.TempDir(), "dict")
			if err := os.WriteFile(path, dict, 0o644); err != nil {
				t.Fatal(err)
			}
			var d bytes.Buffer
			if err := CreateCLI(zstd, path, tc.new, &d); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := Apply(dict, bytes.NewReader(d.Bytes()), &out, int64(len(tc.new))); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), tc.new) {
				t.Fatalf("output differs: %d bytes, want %d", out.Len(), len(tc.new))
			}
			if len(tc.new) > 0 && d.Len() > len(tc.new)/10 {
				t.Errorf("delta of %d bytes for %d bytes mostly in the dictionary", d.Len(), len(tc.new))
			}
		})
	}
}

func TestDictLayout(t *testing.T) {
	a, b := bytes.Repeat([]byte{1}, DictAlign+5), []byte{2, 3}
	d := Dict(a, b)
	if int64(len(d)) != DictSize(int64(len(a)), int64(len(b))) || len(d) != 2*DictAlign+2 {
		t.Fatalf("dict of %d bytes", len(d))
	}
	if !bytes.Equal(d[:len(a)], a) || d[len(a)] != 0 || d[2*DictAlign-1] != 0 || !bytes.Equal(d[2*DictAlign:], b) {
		t.Fatal("layout: first base, zeros to the next DictAlign, second base")
	}
}

// readFrame walks frames by their headers: every way of cutting a delta
// short or padding it is an error of the right class, never a hang or a
// silent success.
func TestApplyFrameErrors(t *testing.T) {
	old := sample(200_000, 31)
	nw := append(mutate(old), sample(PieceSize, 32)...) // two frames
	var d bytes.Buffer
	if err := Create(old, bytes.NewReader(nw), &d); err != nil {
		t.Fatal(err)
	}
	good := d.Bytes()
	for _, tc := range []struct {
		name  string
		patch []byte
		want  error
	}{
		{"cut in a block", good[:len(good)/2], errdefs.ErrCorrupt},
		{"cut in the header", good[:3], errdefs.ErrCorrupt},
		{"bad magic", append([]byte{1, 2, 3, 4}, good[4:]...), errdefs.ErrCorrupt},
		{"trailing garbage", append(append([]byte(nil), good...), 0x28, 0xb5), errdefs.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Apply(old, bytes.NewReader(tc.patch), &bytes.Buffer{}, int64(len(nw)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("empty patch is empty output", func(t *testing.T) {
		n, err := Apply(old, bytes.NewReader(nil), &bytes.Buffer{}, 10)
		if err != nil || n != 0 {
			t.Fatalf("got %d bytes, %v", n, err)
		}
	})
}
