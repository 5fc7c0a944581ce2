package elf

import (
	"fmt"
	"io"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/errdefs"
)

// MaxSize bounds the files this codec takes: a client transforms its old
// file in memory (in place, in a copy-on-write mapping: EncodeInPlace,
// ProjectInPlace; the new one streams through).
const MaxSize = 32 << 20

// ErrUnsupported: an ELF file whose encoding this package cannot undo
// exactly (callers make a plain delta).
var ErrUnsupported = fmt.Errorf("ELF file not reproducible from its encoding: %w", errdefs.ErrInvalidArgument)

// Prepare returns the encoded forms of old and new for a delta between
// them (made by the caller, with package delta's encoder or the zstd
// command): an error when either is not x86-64 ELF, is over MaxSize, or
// new does not decode back exactly.
func Prepare(old, new []byte) (encOld, encNew []byte, err error) {
	if len(old) > MaxSize || len(new) > MaxSize {
		return nil, nil, fmt.Errorf("over %d bytes: %w", MaxSize, errdefs.ErrTooLarge)
	}
	if encOld, err = Encode(old); err != nil {
		return nil, nil, fmt.Errorf("old file: %w", err)
	}
	encNew, ok := Check(new)
	if !ok {
		return nil, nil, ErrUnsupported
	}
	return encOld, encNew, nil
}

// ApplyDelta applies a delta from Encode(old) to the encoded new file,
// writing the decoded new file (at most maxOut bytes) to w. The caller
// checks the result's digest.
func ApplyDelta(old []byte, d io.Reader, w io.Writer, maxOut int64) error {
	if len(old) > MaxSize {
		return fmt.Errorf("delta base over %d bytes: %w", MaxSize, errdefs.ErrTooLarge)
	}
	enc, err := Encode(old)
	if err != nil {
		return fmt.Errorf("encoding the delta's base: %w", err)
	}
	dec := NewDecoder(w, maxOut)
	if _, err := delta.Apply(enc, d, dec, maxOut); err != nil {
		return err
	}
	return dec.Close()
}
