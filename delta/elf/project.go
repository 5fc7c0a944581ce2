package elf

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Zucchini-style reference matching, reduced to what a client can redo
// from the old file and a short map: the publisher aligns old and new
// (align.go) and sends, before the delta, where the addresses of old moved
// to in new (a shift per address range). The client then rewrites every
// reference of its old file as the reference new is predicted to hold: a
// PC-relative operand's displacement from both ends' new addresses, an
// 8-byte pointer in data as the new address of its target. Where the
// prediction holds, old and new agree byte for byte and the delta is
// left with the real changes. Only the base is transformed, never the new
// file, so the result is exact by construction; the client checks its
// digest as for every delta.

// Shift says that old addresses from Addr on (up to the next Shift) are
// at Addr+By in new.
type Shift struct {
	Addr uint64
	By   int64
}

// load is a PT_LOAD segment.
type load struct {
	off, filesz, vaddr, memsz uint64
	exec                      bool
}

// loads reads every PT_LOAD segment from the program headers at the start
// of b, a file of size bytes (b may hold only its start).
func loads(b []byte, size uint64) ([]load, error) {
	if !Is(b) {
		return nil, ErrNotELF
	}
	phoff := binary.LittleEndian.Uint64(b[32:])
	phentsize := uint64(binary.LittleEndian.Uint16(b[54:]))
	phnum := uint64(binary.LittleEndian.Uint16(b[56:]))
	hend := headerLen(b)
	if phentsize < 56 || phnum == 0 || hend > maxHeader || hend > uint64(len(b)) {
		return nil, fmt.Errorf("program headers: %w", ErrNotELF)
	}
	var out []load
	for i := uint64(0); i < phnum; i++ {
		ph := b[phoff+i*phentsize:]
		if binary.LittleEndian.Uint32(ph) != 1 {
			continue
		}
		l := load{off: binary.LittleEndian.Uint64(ph[8:]), vaddr: binary.LittleEndian.Uint64(ph[16:]),
			filesz: binary.LittleEndian.Uint64(ph[32:]), memsz: binary.LittleEndian.Uint64(ph[40:]),
			exec: binary.LittleEndian.Uint32(ph[4:])&1 != 0}
		if l.off+l.filesz < l.off || l.off+l.filesz > size || l.vaddr+l.memsz < l.vaddr {
			return nil, fmt.Errorf("segment past the end: %w", ErrNotELF)
		}
		out = append(out, l)
	}
	return out, nil
}

// addrOf returns the address file offset off is loaded at (ok false when
// no segment loads it).
func addrOf(ls []load, off uint64) (uint64, bool) {
	for _, l := range ls {
		if off >= l.off && off-l.off < l.filesz {
			return l.vaddr + off - l.off, true
		}
	}
	return 0, false
}

// image is the address range of the segments, [lo, hi).
func image(ls []load) (lo, hi uint64) {
	lo = ^uint64(0)
	for _, l := range ls {
		lo, hi = min(lo, l.vaddr), max(hi, l.vaddr+l.memsz)
	}
	return lo, hi
}

// shiftAt is the shift of address a (0 before the first range).
func shiftAt(sh []Shift, a uint64) int64 {
	i := sort.Search(len(sh), func(i int) bool { return sh[i].Addr > a })
	if i == 0 {
		return 0
	}
	return sh[i-1].By
}

// shiftCursor looks up shifts like shiftAt, starting from the range of its last
// answer: addresses come mostly in order (the sweep's) or near each other.
type shiftCursor struct {
	sh []Shift
	i  int // sh[i-1] held the last address looked up (0: before sh[0])
}

func (s *shiftCursor) at(a uint64) int64 {
	sh, i := s.sh, s.i
	if !(i == 0 || sh[i-1].Addr <= a) || !(i == len(sh) || a < sh[i].Addr) {
		i = sort.Search(len(sh), func(i int) bool { return sh[i].Addr > a })
		s.i = i
	}
	if i == 0 {
		return 0
	}
	return sh[i-1].By
}

// minPointer: smaller values in data are taken for numbers, not addresses
// (a PIE image starts at 0).
const minPointer = 4096

// visitRefs calls code for every 4-byte PC-relative operand in b's
// executable segments (at file offset off, the instruction ending at
// address next) and data for every 8-aligned word elsewhere in the file
// whose value lies in the image, telling t (if not nil) how far each pass
// got. The callbacks may rewrite b where they are called: every value
// visitRefs reads is the one b held before the calls.
func visitRefs(b []byte, ls []load, t Tracker, code func(off int, next uint64), data func(off int, v uint64)) error {
	sp, err := spans(b, uint64(len(b)))
	if err != nil {
		return err
	}
	inCode := func(off int) bool {
		for _, s := range sp {
			if uint64(off) >= s.off && uint64(off) < s.end {
				return true
			}
		}
		return false
	}
	// A data word that starts before a segment and ends in it would be
	// read after code rewrote its tail: read it now.
	straddle := map[int]uint64{}
	for _, s := range sp {
		if off := int(s.off) &^ 7; off < int(s.off) && off+8 <= len(b) && !inCode(off) {
			straddle[off] = binary.LittleEndian.Uint64(b[off:])
		}
	}
	for _, s := range sp {
		c := b[s.off:s.end]
		for i, mark := 0, passEvery; i < len(c); {
			n, o := decodeLen(c[i:min(i+maxInst, len(c))])
			if o >= 0 {
				code(int(s.off)+i+o, s.vaddr+uint64(i+n))
			}
			if i += n; i >= mark && t != nil {
				t.Passed(int(s.off) + i)
				mark += passEvery
			}
		}
	}
	lo, hi := image(ls)
	lo = max(lo, minPointer)
	for off := 0; off+8 <= len(b); off += 8 {
		if off%passEvery == 0 && t != nil {
			t.Passed(off)
		}
		v := binary.LittleEndian.Uint64(b[off:])
		if len(straddle) > 0 {
			if sv, ok := straddle[off]; ok {
				v = sv
			}
		}
		if v >= lo && v < hi && !inCode(off) {
			data(off, v)
		}
	}
	return nil
}

// Project returns old with its references rewritten as new is predicted
// to hold them, given where old's addresses moved (sh, sorted by Addr).
func Project(old []byte, sh []Shift) ([]byte, error) {
	out := append([]byte(nil), old...)
	if err := ProjectInPlace(out, sh, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// ProjectInPlace is Project rewriting b itself (a private copy of the old
// file the caller owns), telling t (if not nil) where it wrote and how far
// it got.
func ProjectInPlace(b []byte, sh []Shift, t Tracker) error {
	ls, err := loads(b, uint64(len(b)))
	if err != nil {
		return err
	}
	from, to := &shiftCursor{sh: sh}, &shiftCursor{sh: sh}
	return visitRefs(b, ls, t, func(off int, next uint64) {
		disp := int64(int32(binary.LittleEndian.Uint32(b[off:])))
		target := uint64(int64(next) + disp)
		nn := int64(next) + from.at(next-1)
		nt := int64(target) + to.at(target)
		put(b, off, 4, uint64(nt-nn), t)
	}, func(off int, v uint64) {
		put(b, off, 8, uint64(int64(v)+to.at(v)), t)
	})
}

// masked returns b with every reference visitRefs finds zeroed, so that
// code and data that moved compare equal (align.go).
func masked(b []byte) ([]byte, []load, error) {
	ls, err := loads(b, uint64(len(b)))
	if err != nil {
		return nil, nil, err
	}
	out := append([]byte(nil), b...)
	err = visitRefs(b, ls, nil, func(off int, _ uint64) {
		binary.LittleEndian.PutUint32(out[off:], 0)
	}, func(off int, _ uint64) {
		binary.LittleEndian.PutUint64(out[off:], 0)
	})
	return out, ls, err
}
