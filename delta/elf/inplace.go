package elf

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Tracker follows a transform done in place on a private mapping of the
// old file, so that its caller can keep few of the file's pages resident:
// the pages a transform wrote hold the only copy of their bytes, every
// other page can be dropped and read again from the file.
type Tracker interface {
	// Wrote says bytes [off, off+n) changed.
	Wrote(off, n int)
	// Passed says the current pass reads and writes nothing below off
	// any more (a later pass may).
	Passed(off int)
}

// passEvery is how often, in bytes swept, a Tracker hears of progress.
const passEvery = 1 << 20

// put writes the n-byte (4 or 8) little-endian v at b[off:] if it differs,
// telling t.
func put(b []byte, off, n int, v uint64, t Tracker) {
	if n == 4 {
		if binary.LittleEndian.Uint32(b[off:]) == uint32(v) {
			return
		}
		binary.LittleEndian.PutUint32(b[off:], uint32(v))
	} else {
		if binary.LittleEndian.Uint64(b[off:]) == v {
			return
		}
		binary.LittleEndian.PutUint64(b[off:], v)
	}
	if t != nil {
		t.Wrote(off, n)
	}
}

// EncodeInPlace is Encode rewriting b itself (a private copy the caller
// owns), telling t (if not nil) where it wrote and how far it got.
func EncodeInPlace(b []byte, t Tracker) error {
	sp, err := spans(b, uint64(len(b)))
	if err != nil {
		return err
	}
	for _, s := range sp {
		code := b[s.off:s.end]
		for i, mark := 0, passEvery; i < len(code); {
			n, o := s.step(code[i:min(i+maxInst, len(code))], s.vaddr+uint64(i), true)
			if o >= 0 && t != nil {
				t.Wrote(int(s.off)+i+o, 4)
			}
			if i += n; i >= mark && t != nil {
				t.Passed(int(s.off) + i)
				mark += passEvery
			}
		}
	}
	return nil
}

// ReadShifts reads a map delta's shift map, which comes before its plain
// delta (ApplyMapDelta reads both).
func ReadShifts(r io.ByteReader) ([]Shift, error) {
	sh, err := readShifts(r)
	if err != nil {
		return nil, fmt.Errorf("map delta: %w", err)
	}
	return sh, nil
}
