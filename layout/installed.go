package layout

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/errdefs"
)

// InstalledVersion is the version recorded for slot, without reading its
// manifest (a status display needs only this; decoding a 16k-entry
// manifest costs a daemon ~10 MiB of heap it then keeps).
func (r Root) InstalledVersion(s Slot) (Version, error) {
	vb, err := os.ReadFile(r.SlotVersionFile(s))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("slot %s has no installed version: %w", s, errdefs.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	v, err := ParseVersion(strings.TrimSuffix(string(vb), "\n"))
	if err == nil && v == 0 {
		err = errors.New("empty")
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %w", r.SlotVersionFile(s), err, errdefs.ErrCorrupt)
	}
	return v, nil
}

// MigrateSeen moves the seen index kept before serials were per channel
// (one file for the only channel a machine could follow) to channel's
// place. The daemon calls it at start with the configured channel, before
// any switch; a channel that already has its own file keeps it.
func (r Root) MigrateSeen(channel string) error {
	old := r.SeenIndex()
	if _, err := os.Stat(old); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if !ValidChannel(channel) {
		return fmt.Errorf("channel %s: %w", errdefs.Quote(channel, 64), errdefs.ErrInvalidArgument)
	}
	path := r.SeenIndexFor(channel)
	if _, err := os.Stat(path); err == nil {
		return os.Remove(old)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0755); err != nil {
		return err
	}
	if err := os.Rename(old, path); err != nil {
		return fmt.Errorf("migrate %s: %w", old, err)
	}
	return atomicfile.SyncDir(filepath.Dir(old))
}
