package elf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/errdefs"
)

// maxShifts bounds the map a client reads before the delta.
const maxShifts = 1 << 20

// A map delta is the shift map, then a plain delta
// from Project(old, map) to the new file. The map is a uvarint count,
// then per Shift the uvarint growth of Addr and the varint change of By
// from the previous one (both from 0).

// PrepareMap aligns old and new and returns the map's bytes and the
// projected old file, the base for the delta the caller makes (with
// package delta's encoder or the zstd command).
func PrepareMap(old, new []byte) (header, base []byte, err error) {
	if len(old) > MaxSize || len(new) > MaxSize {
		return nil, nil, fmt.Errorf("over %d bytes: %w", MaxSize, errdefs.ErrTooLarge)
	}
	sh, err := Align(old, new)
	if err != nil {
		return nil, nil, err
	}
	base, err = Project(old, sh)
	if err != nil {
		return nil, nil, err
	}
	return appendShifts(nil, sh), base, nil
}

func appendShifts(b []byte, sh []Shift) []byte {
	b = binary.AppendUvarint(b, uint64(len(sh)))
	var addr uint64
	var by int64
	for _, s := range sh {
		b = binary.AppendUvarint(b, s.Addr-addr)
		b = binary.AppendVarint(b, s.By-by)
		addr, by = s.Addr, s.By
	}
	return b
}

func readShifts(r io.ByteReader) ([]Shift, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("shift map: %w", err)
	}
	if n > maxShifts {
		return nil, fmt.Errorf("shift map of %d entries: %w", n, errdefs.ErrTooLarge)
	}
	sh := make([]Shift, 0, min(n, 1024)) // grown as entries arrive: a short map cannot claim 16 MiB
	var addr uint64
	var by int64
	for i := uint64(0); i < n; i++ {
		da, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, fmt.Errorf("shift map: %w", err)
		}
		db, err := binary.ReadVarint(r)
		if err != nil {
			return nil, fmt.Errorf("shift map: %w", err)
		}
		if addr+da < addr || (i > 0 && da == 0) {
			return nil, fmt.Errorf("shift map out of order: %w", errdefs.ErrInvalidArgument)
		}
		addr, by = addr+da, by+db
		sh = append(sh, Shift{Addr: addr, By: by})
	}
	return sh, nil
}

// ApplyMapDelta reads the map, projects old and applies the delta that
// follows, writing the new file (at most maxOut bytes) to w. The caller
// checks the result's digest.
func ApplyMapDelta(old []byte, d io.Reader, w io.Writer, maxOut int64) error {
	if len(old) > MaxSize {
		return fmt.Errorf("delta base over %d bytes: %w", MaxSize, errdefs.ErrTooLarge)
	}
	br := bufio.NewReader(d)
	sh, err := readShifts(br)
	if err != nil {
		return err
	}
	base, err := Project(old, sh)
	if err != nil {
		return fmt.Errorf("projecting the delta's base: %w", err)
	}
	_, err = delta.Apply(base, br, w, maxOut)
	return err
}
