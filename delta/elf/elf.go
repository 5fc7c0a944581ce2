// Package elf makes x86-64 ELF executables and libraries delta-friendly.
// A rebuilt binary's code moves where functions changed size, and every
// RIP-relative reference from moved code to data that did not move (string
// constants, tables, the GOT) changes its displacement: thousands of
// 4-byte differences scattered through the file, which byte-level deltas
// pay for. Encode rewrites the displacement of each such reference (a
// PC-relative operand whose target lies outside the executable segment) as
// the absolute target, which stays the same; references within the code
// keep their relative form, which is what stays the same when caller and
// callee move together.
//
// Instructions are found by a linear sweep of the executable PT_LOAD
// segments (golang.org/x/arch's decoder, with a faster path for common
// forms: fast.go); bytes that do not decode are
// skipped one at a time. The inverse runs the same sweep over the encoded
// bytes, so it is exact whenever both sweeps see the same instruction
// boundaries and classify each operand alike, which holds for real code
// but is not guaranteed: callers check Decode(Encode(x)) == x (Check).
package elf

import (
	"encoding/binary"
	"fmt"

	"laptop.org/upgrade/errdefs"
)

// ErrNotELF: not a little-endian x86-64 ELF file with an executable
// segment this package reads.
var ErrNotELF = fmt.Errorf("not an x86-64 ELF file: %w", errdefs.ErrInvalidArgument)

// span is an executable segment: file offsets [off, end) hold code whose
// first byte is at vaddr; [lo, hi) is the segment in memory (32-bit
// truncated, as operands are).
type span struct {
	off, end, vaddr uint64
	lo, hi          uint32
}

// maxHeader bounds where the program headers may end: a streaming decoder
// holds that much before it can start.
const maxHeader = 64 << 10

// maxInst is the longest x86 instruction.
const maxInst = 15

// Is reports whether b starts like an x86-64 ELF file.
func Is(b []byte) bool {
	return len(b) >= 64 && string(b[:4]) == "\x7fELF" && b[4] == 2 && b[5] == 1 && binary.LittleEndian.Uint16(b[18:]) == 62
}

// headerLen is how many bytes the ELF and program headers take.
func headerLen(b []byte) uint64 {
	phoff := binary.LittleEndian.Uint64(b[32:])
	n := uint64(binary.LittleEndian.Uint16(b[54:])) * uint64(binary.LittleEndian.Uint16(b[56:]))
	if phoff > maxHeader || n > maxHeader {
		return maxHeader + 1
	}
	return phoff + n
}

// spans reads the executable PT_LOAD segments from the headers at the
// start of b. Code inside the headers is left alone, so that a decoder
// reads the headers unchanged.
func spans(b []byte, size uint64) ([]span, error) {
	ls, err := loads(b, size)
	if err != nil {
		return nil, err
	}
	hend := headerLen(b)
	var out []span
	for _, l := range ls {
		if !l.exec {
			continue
		}
		end := l.off + l.filesz
		s := span{off: l.off, end: end, vaddr: l.vaddr, lo: uint32(l.vaddr), hi: uint32(l.vaddr + l.memsz)}
		if s.off < hend {
			s.vaddr += min(hend, end) - s.off
			s.off = min(hend, end)
		}
		if len(out) > 0 && s.off < out[len(out)-1].end {
			return nil, fmt.Errorf("overlapping segments: %w", ErrNotELF)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no executable segment: %w", ErrNotELF)
	}
	return out, nil
}

// step handles the instruction at win[0], at address addr, rewriting its
// operand in place, and returns its length (1 for bytes that do not
// decode) and where in win it wrote 4 bytes (-1: nowhere). win holds
// maxInst bytes, or the rest of the span if shorter.
func (s *span) step(win []byte, addr uint64, encode bool) (n, wrote int) {
	n, o := decodeLen(win)
	wrote = -1
	if o >= 0 {
		code := win
		next := uint32(addr + uint64(n))
		v := binary.LittleEndian.Uint32(code[o:])
		switch {
		case encode && !s.inside(v+next):
			binary.LittleEndian.PutUint32(code[o:], v+next)
			wrote = o
		case !encode && !s.inside(v):
			// An absolute target outside the segment (encoded), unless
			// v+next is inside: then it was kept relative.
			if !s.inside(v + next) {
				binary.LittleEndian.PutUint32(code[o:], v-next)
				wrote = o
			}
		}
	}
	return n, wrote
}

func (s *span) inside(a uint32) bool { return a-s.lo < s.hi-s.lo }

// Encode returns the transformed copy of an x86-64 ELF file.
func Encode(b []byte) ([]byte, error) {
	out := append([]byte(nil), b...)
	if err := EncodeInPlace(out, nil); err != nil {
		return nil, err
	}
	return out, nil
}
