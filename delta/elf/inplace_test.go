package elf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// projectCopy is Project as it was before it worked in place: every value
// read from old, every write to a copy. ProjectInPlace must agree with it
// byte for byte, since publishers made deltas against its output.
func projectCopy(old []byte, sh []Shift) ([]byte, error) {
	ls, err := loads(old, uint64(len(old)))
	if err != nil {
		return nil, err
	}
	sp, err := spans(old, uint64(len(old)))
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), old...)
	for _, s := range sp {
		c := old[s.off:s.end]
		for i := 0; i < len(c); {
			inst, err := x86asm.Decode(c[i:min(i+maxInst, len(c))], 64)
			if err != nil || inst.Len == 0 {
				i++
				continue
			}
			if inst.PCRel == 4 {
				off, next := int(s.off)+i+inst.PCRelOff, s.vaddr+uint64(i+inst.Len)
				target := uint64(int64(next) + int64(int32(binary.LittleEndian.Uint32(old[off:]))))
				nn := int64(next) + shiftAt(sh, next-1)
				nt := int64(target) + shiftAt(sh, target)
				binary.LittleEndian.PutUint32(out[off:], uint32(nt-nn))
			}
			i += inst.Len
		}
	}
	lo, hi := image(ls)
	lo = max(lo, minPointer)
	for off := 0; off+8 <= len(old); off += 8 {
		inCode := false
		for _, s := range sp {
			inCode = inCode || (uint64(off) >= s.off && uint64(off) < s.end)
		}
		if v := binary.LittleEndian.Uint64(old[off:]); v >= lo && v < hi && !inCode {
			binary.LittleEndian.PutUint64(out[off:], uint64(int64(v)+shiftAt(sh, v)))
		}
	}
	return out, nil
}

// pages is a Tracker that records written pages and fails on a write
// behind what the current pass has passed.
type pages struct {
	written map[int]bool
	passed  int
	err     error
}

func (p *pages) Wrote(off, n int) {
	if off < p.passed && p.err == nil {
		p.err = fmt.Errorf("wrote at %d after passing %d", off, p.passed)
	}
	for o := off; o < off+n; o++ {
		p.written[o/4096] = true
	}
}

func (p *pages) Passed(off int) { p.passed = off }

// misaligned returns dash with its executable segment starting one byte
// later, a call with a zero displacement there, and a pointer-sized value
// in the image in the 8 bytes that straddle the segment's start: the code
// pass rewrites the call's displacement, which the data pass must not
// read.
func misaligned(t *testing.T, dash []byte) ([]byte, []Shift) {
	b := append([]byte(nil), dash...)
	phoff := binary.LittleEndian.Uint64(b[32:])
	for i := 0; i < int(binary.LittleEndian.Uint16(b[56:])); i++ {
		ph := b[phoff+uint64(i)*uint64(binary.LittleEndian.Uint16(b[54:])):]
		if binary.LittleEndian.Uint32(ph) != 1 || binary.LittleEndian.Uint32(ph[4:])&1 == 0 {
			continue
		}
		off, vaddr := binary.LittleEndian.Uint64(ph[8:]), binary.LittleEndian.Uint64(ph[16:])
		if off%8 != 0 {
			t.Fatalf("dash's code segment at %#x is not 8-aligned", off)
		}
		binary.LittleEndian.PutUint64(ph[8:], off+1)
		binary.LittleEndian.PutUint64(ph[16:], vaddr+1)
		binary.LittleEndian.PutUint64(ph[32:], binary.LittleEndian.Uint64(ph[32:])-1)
		binary.LittleEndian.PutUint64(ph[40:], binary.LittleEndian.Uint64(ph[40:])-1)
		copy(b[off:], []byte{0x10, 0xe8, 0, 0, 0, 0, 0, 0}) // 0xe810, then call .+5
		return b, []Shift{{Addr: vaddr + 1 + 5, By: 0x100}}
	}
	t.Fatal("dash has no code segment")
	return nil, nil
}

func TestProjectInPlace(t *testing.T) {
	exe := executables(t)
	bent, bentShifts := misaligned(t, exe["/bin/dash"])
	tests := []struct {
		name string
		old  []byte
		sh   []Shift
	}{
		{"dash", exe["/bin/dash"], []Shift{{Addr: 0x2000, By: 64}, {Addr: 0x9000, By: -32}}},
		{"zstd", exe["/usr/bin/zstd"], []Shift{{Addr: 0x3000, By: 4096}, {Addr: 0x20000, By: 16}}},
		{"straddling word", bent, bentShifts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := projectCopy(tt.old, tt.sh)
			if err != nil {
				t.Fatal(err)
			}
			got := append([]byte(nil), tt.old...)
			tr := &pages{written: map[int]bool{}}
			if err := ProjectInPlace(got, tt.sh, tr); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("ProjectInPlace differs from a projection into a copy")
			}
			checkTracked(t, tt.old, got, tr)
		})
	}
}

func TestEncodeInPlace(t *testing.T) {
	for p, b := range executables(t) {
		want, err := Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		got := append([]byte(nil), b...)
		tr := &pages{written: map[int]bool{}}
		if err := EncodeInPlace(got, tr); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: EncodeInPlace differs from Encode", p)
		}
		checkTracked(t, b, got, tr)
	}
}

// checkTracked fails unless every changed byte is on a page the tracker
// heard of, and no write came behind a pass.
func checkTracked(t *testing.T, old, got []byte, tr *pages) {
	t.Helper()
	if tr.err != nil {
		t.Fatal(tr.err)
	}
	changed := 0
	for i := range old {
		if old[i] != got[i] {
			changed++
			if !tr.written[i/4096] {
				t.Fatalf("byte %d changed on a page not reported written", i)
			}
		}
	}
	if changed == 0 {
		t.Fatal("the transform changed nothing: the test proves nothing")
	}
}
