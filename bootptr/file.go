package bootptr

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// Write replaces the pointer at path atomically and durably: a temp file in
// the same directory (so rename never crosses filesystems), write, fsync,
// rename over path, fsync the directory (renameio leaves that last step out;
// without it a power cut can bring back the old pointer after the new one was
// acted upon). A crash at any instant leaves either the old or the new file.
//
// Write stores p exactly as given, Seq included: the transitions (WithTrial,
// MarkGood, Rollback) and Decide already return Seq+1, so the sequence number
// moves with the decision, not with a read-modify-write race in here. The
// directory is created if missing (first boot, or after a repair).
func Write(path string, p Pointer) error {
	if err := p.Validate(); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	f, err := os.CreateTemp(dir, ".bootptr-*")
	if err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	if _, err := f.Write(p.Encode()); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write boot pointer: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	ok = true
	// After the rename the new pointer is in place; a failing directory fsync
	// is still reported because durability is part of the contract.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write boot pointer: fsync %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
