package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/report"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

// Options for one upgrade job.
type Options struct {
	Version  layout.Version // 0 = newest on the channel
	Job      uint32         // recorded in the journal
	Progress func(Progress)
	// NewestOnly refuses a Version that is not the newest in the index
	// fetched now: the caller was authorized to install the newest only.
	NewestOnly bool
}

// Result describes a finished (or planned) upgrade.
type Result = report.Result

// Slots returns (active, inactive) after sanity checks that give a clear
// error for a broken root: current pointing nowhere, a slot that is a file.
// A missing inactive slot is created, as an upgrade is about to fill it.
func Slots(r layout.Root) (layout.Slot, layout.Slot, error) {
	return slots(r, true)
}

// slots is Slots; without create a missing inactive slot is left missing
// (a check writes nothing).
func slots(r layout.Root, create bool) (layout.Slot, layout.Slot, error) {
	active, err := r.CurrentSlot()
	if err != nil {
		return "", "", err
	}
	for _, s := range []layout.Slot{active, active.Other()} {
		st, err := os.Lstat(r.Slot(s))
		if errors.Is(err, os.ErrNotExist) && s != active {
			if !create {
				continue
			}
			if err := os.Mkdir(r.Slot(s), 0755); err != nil {
				return "", "", fmt.Errorf("create slot %s: %w", s, err)
			}
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("slot %s: %v: %w", s, err, errdefs.ErrFailedPrecondition)
		}
		if !st.IsDir() {
			return "", "", fmt.Errorf("slot %s (%s) is not a directory: %w", s, r.Slot(s), errdefs.ErrFailedPrecondition)
		}
	}
	return active, active.Other(), nil
}

// Upgrade builds the target version in the inactive slot, resuming an
// interrupted job for the same target. On success the slot is complete,
// verified and recorded; the boot pointer is untouched. An error names the
// step that failed (StepError).
func Upgrade(ctx context.Context, cfg *Config, o Options) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return newRun(cfg, o, false).do(ctx, upgradeSteps)
}

// upgradeSteps are Upgrade's steps, in order; each one's doc comment says
// what it does and how a resumed job goes through it again.
var upgradeSteps = []step{
	{"check", (*run).check},
	{"target", (*run).target},
	{"ready", (*run).ready},
	{"plan", (*run).plan},
	{"prepare", (*run).prepare},
	{"clone", (*run).clone},
	{"fetch", (*run).fetch},
	{"apply", (*run).apply},
	{"verify", (*run).verify},
	{"record", (*run).record},
}

func verifySlot(ctx context.Context, r layout.Root, s layout.Slot, m *manifest.Manifest, cfg *Config, written func(verify.Inode) (digest.Digest, bool), report func(Progress)) error {
	root, err := slotfs.Open(r.Slot(s))
	if err != nil {
		return err
	}
	defer root.Close()
	report(Progress{Phase: PhaseVerifying})
	return verify.Slot(ctx, root, m, verify.Options{
		Workers:  defaultWorkers(cfg.Workers),
		Progress: func(done, total int64) { report(Progress{Phase: PhaseVerifying, BytesDone: done, BytesTotal: total}) },
		Written:  written,
	})
}

// spaceMargin is kept free for the running system.
const spaceMargin = 16 << 20

// checkSpace refuses an upgrade that cannot fit, before anything is
// downloaded: staging bytes plus new inodes' content, and inodes for the
// clone's directories and symlinks plus new files.
func checkSpace(r layout.Root, res *Result, p *Plan) error {
	sfs, err := statfsNearest(r.StateDir())
	if err != nil {
		return err
	}
	res.FreeBytes = int64(sfs.Bavail) * int64(sfs.Bsize)
	res.FreeInodes = int64(sfs.Ffree)
	res.NeedBytes = res.DownloadBytes + p.NewBytes + spaceMargin
	res.NeedInodes = p.NewInodes + int64(len(p.Blobs))
	if res.NeedBytes > res.FreeBytes {
		return fmt.Errorf("the upgrade needs %d MB on disk (%d MB to download, %d MB of new files, %d MB kept free for the running system) but only %d MB are free: %w",
			res.NeedBytes>>20, res.DownloadBytes>>20, p.NewBytes>>20, spaceMargin>>20, res.FreeBytes>>20, errdefs.ErrNoSpace)
	}
	if sfs.Files > 0 && res.NeedInodes > res.FreeInodes { // Files == 0: no inode limit (btrfs)
		return fmt.Errorf("the upgrade needs %d inodes but only %d are free: %w", res.NeedInodes, res.FreeInodes, errdefs.ErrNoSpace)
	}
	return nil
}

// statfsNearest is statfs of dir, or of its nearest existing parent: a
// check runs before the state directory exists, and creates nothing.
func statfsNearest(dir string) (unix.Statfs_t, error) {
	var sfs unix.Statfs_t
	for {
		err := unix.Statfs(dir, &sfs)
		if err == nil || err != unix.ENOENT || filepath.Dir(dir) == dir {
			if err != nil {
				return sfs, fmt.Errorf("statfs %s: %w", dir, err)
			}
			return sfs, nil
		}
		dir = filepath.Dir(dir)
	}
}

// fullDisk gives a disk that filled up during the job (another writer, a
// wrong estimate) its class, so that the daemon reports NoSpace rather than
// a generic failure; the job stays resumable once space is freed.
func fullDisk(err error) error {
	if errors.Is(err, errdefs.ErrNoSpace) || !(errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) {
		return err
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrNoSpace)
}

// useScratch empties dir (temp files a crash left) and makes it where the
// slot's new files are written before they are renamed into place.
func useScratch(b *slotfs.Root, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear scratch directory: %w", err)
	}
	if err := os.Mkdir(dir, 0700); err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	return b.SetScratch(dir)
}
