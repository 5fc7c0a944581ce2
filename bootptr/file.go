package bootptr

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"laptop.org/upgrade/atomicfile"
)

// Read reads and decodes the pointer at path. A missing file keeps
// os.ErrNotExist detectable with errors.Is; a damaged one wraps
// errdefs.ErrCorrupt. Either way the initrd's Decide picks a safe slot.
func Read(path string) (Pointer, error) {
	f, err := os.Open(path)
	if err != nil {
		return Pointer{}, fmt.Errorf("read boot pointer: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so that Decode sees an oversized file as
	// oversized rather than as a truncated one.
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return Pointer{}, fmt.Errorf("read boot pointer %s: %w", path, err)
	}
	p, err := Decode(b)
	if err != nil {
		return Pointer{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Write replaces the pointer at path atomically and durably (atomicfile:
// the directory is fsynced too, or a power cut could bring back the old
// pointer after the new one was acted upon). A crash at any instant leaves
// either the old or the new file.
//
// Write stores p exactly as given, Seq included: the transitions (WithTrial,
// MarkGood, Rollback) and Decide already return Seq+1, so the sequence number
// moves with the decision, not with a read-modify-write race in here. The
// directory is created if missing (first boot, or after a repair).
func Write(path string, p Pointer) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	if err := atomicfile.Write(path, p.Encode(), 0o644); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	return nil
}
