package bootptr

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

const sample = "upgrade-bootptr 1\nnext=b\ngood=a\ntrial=1\ntries=3\nfailed=\nseq=7\n"

// withCRC appends the crc32 line the way Encode does, so that tests can build
// files that pass the CRC but break another rule.
func withCRC(body string) []byte {
	return []byte(body + fmt.Sprintf("crc32=%08x\n", crc32.ChecksumIEEE([]byte(body))))
}

func TestEncodeGolden(t *testing.T) {
	p := Pointer{Next: "b", Good: "a", Trial: true, Tries: 3, Seq: 7}
	if diff := cmp.Diff(string(withCRC(sample)), string(p.Encode())); diff != "" {
		t.Errorf("Encode (-want +got):\n%s", diff)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, p := range []Pointer{
		{Next: "a", Good: "a"},
		{Next: "b", Good: "a", Trial: true, Tries: 99, Seq: 1},
		{Next: "a", Good: "a", Failed: "b", Seq: 1<<64 - 1},
		{Next: "b", Good: "b", Trial: true, Tries: 0, Failed: "a"},
	} {
		got, err := Decode(p.Encode())
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", p, err)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := withCRC(sample)
	flip := bytes.Clone(good)
	flip[20] ^= 1
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"no final newline", good[:len(good)-1]},
		{"bit flip", flip},
		{"truncated", good[:40]},
		{"version 2", withCRC(strings.Replace(sample, "bootptr 1", "bootptr 2", 1))},
		{"wrong magic", withCRC(strings.Replace(sample, "upgrade-bootptr", "upgrade-bootptx", 1))},
		{"bad next slot", withCRC(strings.Replace(sample, "next=b", "next=c", 1))},
		{"empty good", withCRC(strings.Replace(sample, "good=a", "good=", 1))},
		{"bad failed slot", withCRC(strings.Replace(sample, "failed=", "failed=x", 1))},
		{"trial 2", withCRC(strings.Replace(sample, "trial=1", "trial=2", 1))},
		{"tries 100", withCRC(strings.Replace(sample, "tries=3", "tries=100", 1))},
		{"tries negative", withCRC(strings.Replace(sample, "tries=3", "tries=-1", 1))},
		{"tries leading zero", withCRC(strings.Replace(sample, "tries=3", "tries=03", 1))},
		{"seq plus sign", withCRC(strings.Replace(sample, "seq=7", "seq=+7", 1))},
		{"seq overflow", withCRC(strings.Replace(sample, "seq=7", "seq=18446744073709551616", 1))},
		{"keys swapped", withCRC(strings.Replace(sample, "next=b\ngood=a", "good=a\nnext=b", 1))},
		{"unknown key", withCRC(strings.Replace(sample, "failed=", "color=", 1))},
		{"extra line", withCRC(sample + "x=1\n")},
		{"crc line missing", []byte(sample)},
		{"crc uppercase hex", []byte(sample + fmt.Sprintf("crc32=%08X\n", crc32.ChecksumIEEE([]byte(sample))))},
		{"crlf", bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n"))},
		{"huge", bytes.Repeat([]byte("x\n"), maxSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decode(tc.in)
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("Decode = %+v, %v; want ErrCorrupt", p, err)
			}
			if p != (Pointer{}) {
				t.Errorf("Decode returned %+v with an error; want the zero Pointer", p)
			}
		})
	}
}

func TestReadWrite(t *testing.T) {
	root := layout.Root{Dir: t.TempDir()}
	path := root.BootPointer()
	if _, err := Read(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read missing = %v; want os.ErrNotExist", err)
	}
	p := Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 4}
	if err := Write(path, p); err != nil { // creates R/var/lib/securityd
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("Read after Write (-want +got):\n%s", diff)
	}
	p = p.MarkGood("b")
	if err := Write(path, p); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(path); got != p {
		t.Errorf("Read after rewrite = %+v, want %+v", got, p)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the pointer (temp files left behind?)", len(ents))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("Read garbage = %v; want ErrCorrupt naming the path", err)
	}
	if err := Write(path, Pointer{Next: "c", Good: "a"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Write invalid = %v; want ErrInvalidArgument", err)
	}
}

func TestTransitions(t *testing.T) {
	base := Pointer{Next: "a", Good: "a", Seq: 10}
	for _, tc := range []struct {
		name string
		got  Pointer
		want Pointer
	}{
		{"trial b", base.WithTrial("b", 3), Pointer{Next: "b", Good: "a", Trial: true, Tries: 3, Seq: 11}},
		{"trial clamps 0 to 1", base.WithTrial("b", 0), Pointer{Next: "b", Good: "a", Trial: true, Tries: 1, Seq: 11}},
		{"trial clamps 500", base.WithTrial("b", 500), Pointer{Next: "b", Good: "a", Trial: true, Tries: 99, Seq: 11}},
		{"trial clears failed", Pointer{Next: "a", Good: "a", Failed: "b"}.WithTrial("b", 2), Pointer{Next: "b", Good: "a", Trial: true, Tries: 2, Seq: 1}},
		{"mark good ends trial", base.WithTrial("b", 3).MarkGood("b"), Pointer{Next: "b", Good: "b", Seq: 12}},
		{"mark good keeps other trial", base.WithTrial("b", 3).MarkGood("a"), Pointer{Next: "b", Good: "a", Trial: true, Tries: 3, Seq: 12}},
		{"mark good clears own failure", Pointer{Next: "a", Good: "b", Failed: "a"}.MarkGood("a"), Pointer{Next: "a", Good: "a", Seq: 1}},
		{"mark good keeps other failure", Pointer{Next: "a", Good: "a", Failed: "b"}.MarkGood("a"), Pointer{Next: "a", Good: "a", Failed: "b", Seq: 1}},
		{"rollback", Pointer{Next: "b", Good: "b", Failed: "a", Seq: 3}.Rollback("a"), Pointer{Next: "a", Good: "a", Failed: "a", Seq: 4}},
		{"rollback cancels trial", base.WithTrial("b", 3).Rollback("a"), Pointer{Next: "a", Good: "a", Seq: 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(withCRC(sample))
	f.Add(Pointer{Next: "a", Good: "a"}.Encode())
	f.Add([]byte("upgrade-bootptr 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes is valid and is exactly what Encode writes.
		if err := p.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid pointer: %v", err)
		}
		if !bytes.Equal(p.Encode(), b) {
			t.Fatalf("Decode accepted non-canonical bytes %q", b)
		}
	})
}
