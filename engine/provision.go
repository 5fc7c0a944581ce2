package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/slotfs"
)

// Provision builds a bootable root from a repository version, as an image
// builder runs it: slot a filled, verified and recorded; R/current -> a; one
// R/<top> -> current/<top> symlink per top-level entry of the slot; the
// persistent directories outside the slots; an empty slot b; and the boot
// pointer's initial state (a, known good).
func Provision(ctx context.Context, cfg *Config, version layout.Version) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	defer delta.Release()
	r := cfg.Root
	for _, d := range append([]string{"", string(layout.SlotA), string(layout.SlotB)}, layout.PersistentDirs...) {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0755); err != nil {
			return nil, fmt.Errorf("provision: %w", err)
		}
	}
	rm, err := OpenRemote(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	ref, err := rm.Pick(version)
	if err != nil {
		return nil, err
	}
	t, err := rm.LoadTarget(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer limitMemory(len(t.Manifest.Entries))()
	plan, err := rm.Plan(ctx, nil, nil, t)
	if err != nil {
		return nil, err
	}
	res := &Result{Slot: layout.SlotA, Version: ref.Version, Counts: plan.Counts, DownloadBytes: plan.DownloadBytes}
	if err := InvalidateSlot(r, layout.SlotA); err != nil {
		return nil, err
	}
	if err := rm.F.Fetch(ctx, r.StagingDir(), plan.Blobs); err != nil {
		return nil, fmt.Errorf("provision download: %w", err)
	}
	res.Fetched = rm.F.BytesReceived()
	root, err := slotfs.Open(r.Slot(layout.SlotA))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	ap := &applier{b: root, t: t, p: plan, staging: r.StagingDir(), workers: defaultWorkers(cfg.Workers)}
	if err := ap.run(ctx); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	if err := verifySlot(ctx, r, layout.SlotA, t.Manifest, cfg, nil, func(Progress) {}); err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	if err := SaveInstalled(r, layout.SlotA, ref.Version, rm.IndexRaw, t.ManifestRaw); err != nil {
		return nil, err
	}
	os.RemoveAll(r.StagingDir())
	if err := SetSymlink(r.Current(), string(layout.SlotA)); err != nil {
		return nil, err
	}
	for i := range t.Manifest.Entries {
		e := &t.Manifest.Entries[i]
		if strings.Contains(e.Path, "/") || isPersistent(e.Path) {
			continue
		}
		if err := SetSymlink(filepath.Join(r.Dir, e.Path), "current/"+e.Path); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(r.SecurityDir(), 0700); err != nil {
		return nil, err
	}
	if err := bootptr.Write(r.BootPointer(), bootptr.Pointer{Next: layout.SlotA, Good: layout.SlotA}); err != nil {
		return nil, fmt.Errorf("provision boot pointer: %w", err)
	}
	return res, nil
}

func isPersistent(name string) bool {
	for _, p := range layout.PersistentDirs {
		if p == name {
			return true
		}
	}
	return name == "current" || name == string(layout.SlotA) || name == string(layout.SlotB)
}

// SetSymlink atomically points path at target: a new link at a temp name,
// then rename(2) over the old one. Never `ln -sf`/`mv`, which put the new
// link *inside* a directory the old one points to.
func SetSymlink(path, target string) error {
	if t, err := os.Readlink(path); err == nil && t == target {
		return nil
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s exists and is not a symlink: %w", path, errdefs.ErrFailedPrecondition)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), slotfs.TempPrefix+filepath.Base(path))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
