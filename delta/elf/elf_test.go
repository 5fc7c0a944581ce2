package elf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/errdefs"
)

// decode runs the streaming decoder over enc in writes of random sizes.
func decode(t *testing.T, enc []byte, seed uint64) []byte {
	t.Helper()
	var out bytes.Buffer
	d := NewDecoder(&out, int64(len(enc)))
	r := rand.New(rand.NewPCG(seed, 2))
	for rest := enc; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(9000))
		if _, err := d.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// executables are real x86-64 programs (zstd: scripts/deps.d/base.txt);
// the test binary itself is larger, and slow under -race.
func executables(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	for _, p := range []string{"/bin/dash", "/usr/bin/zstd"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}

// Real x86-64 code: encoding changes many operands and streams back
// exactly.
func TestRoundTripRealExecutables(t *testing.T) {
	i := uint64(0)
	for p, b := range executables(t) {
		enc, ok := Check(b)
		if !ok {
			t.Fatalf("%s: not reproducible", p)
		}
		changed := 0
		for j := range b {
			if b[j] != enc[j] {
				changed++
			}
		}
		if changed < len(b)/200 {
			t.Errorf("%s: only %d of %d bytes encoded", p, changed, len(b))
		}
		if i++; !bytes.Equal(decode(t, enc, i), b) {
			t.Fatalf("%s: streamed decoding differs", p)
		}
	}
}

// Code moved by a few bytes, as when an early function grows: the encoded
// files share more, so their delta is smaller.
func TestDeltaOfMovedCode(t *testing.T) {
	old := executables(t)["/usr/bin/zstd"]
	sp, err := spans(old, uint64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	// Shift the second half of the code by 16 bytes, fixing up nothing but
	// the relative operands that now point 16 bytes off their data: that
	// is what the compiler's output for a grown function looks like.
	s := sp[0]
	nw := append([]byte(nil), old...)
	mid := s.off + (s.end-s.off)/2
	copy(nw[mid+16:s.end], old[mid:s.end-16])
	encOld, _ := Encode(old)
	code := nw[mid+16 : s.end]
	for i := 0; i < len(code); {
		addr := s.vaddr + (mid + 16 - s.off) + uint64(i)
		win := code[i:min(i+maxInst, len(code))]
		i += s.shift(win, addr, 16)
	}
	encNew, encOK := Check(nw)
	if !encOK {
		t.Fatal("shifted file not reproducible")
	}
	var plain, enc bytes.Buffer
	if err := delta.Create(old, bytes.NewReader(nw), &plain); err != nil {
		t.Fatal(err)
	}
	if err := delta.Create(encOld, bytes.NewReader(encNew), &enc); err != nil {
		t.Fatal(err)
	}
	t.Logf("plain delta %d bytes, of encoded files %d", plain.Len(), enc.Len())
	if enc.Len() >= plain.Len() {
		t.Errorf("encoded delta %d bytes, plain %d", enc.Len(), plain.Len())
	}
	var out bytes.Buffer
	if err := ApplyDelta(old, bytes.NewReader(enc.Bytes()), &out, int64(len(nw))); err != nil || !bytes.Equal(out.Bytes(), nw) {
		t.Fatalf("ApplyDelta: %v", err)
	}
}

func TestRejects(t *testing.T) {
	if _, _, err := Prepare([]byte("#!/bin/sh\necho not elf\n"), []byte("#!/bin/sh\n")); !errors.Is(err, ErrNotELF) {
		t.Fatalf("script: got %v", err)
	}
	var out bytes.Buffer
	d := NewDecoder(&out, 10)
	d.Write([]byte("\x7fELF"))
	if err := d.Close(); !errors.Is(err, ErrNotELF) {
		t.Fatalf("cut headers: got %v", err)
	}
	b := executables(t)["/bin/dash"]
	if err := ApplyDelta(b, bytes.NewReader([]byte("not a delta")), &out, int64(len(b))); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("bad delta: got %v", err)
	}
}

// FuzzDecoder: Encode and the decoder never panic, and Check's verdict is
// what the decoder gives.
func FuzzDecoder(f *testing.F) {
	self, _ := os.Executable()
	if b, err := os.ReadFile(self); err == nil {
		f.Add(b[:8192])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		enc, ok := Check(b)
		if !ok {
			return
		}
		var out bytes.Buffer
		d := NewDecoder(&out, int64(len(enc)))
		if _, err := d.Write(enc); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil || !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// shift adjusts the instruction at win[0], moved by delta bytes to addr,
// as a linker would: a reference out of the segment keeps its target.
func (s *span) shift(win []byte, addr uint64, delta uint32) int {
	inst, err := x86asm.Decode(win, 64)
	if err != nil || inst.Len == 0 {
		return 1
	}
	if inst.PCRel == 4 {
		o := inst.PCRelOff
		v := binary.LittleEndian.Uint32(win[o:])
		if !s.inside(v + uint32(addr+uint64(inst.Len))) {
			binary.LittleEndian.PutUint32(win[o:], v-delta)
		}
	}
	return inst.Len
}

func BenchmarkEncode(b *testing.B) {
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Encode(data); err != nil {
			b.Fatal(err)
		}
	}
}
