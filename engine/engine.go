package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

// Options for one upgrade job.
type Options struct {
	Version  layout.Version // 0 = newest on the channel
	Job      uint32         // recorded in the journal
	Progress func(Progress)
	// DryRun stops after planning: nothing is written into the slot.
	DryRun bool
	// NewestOnly refuses a Version that is not the newest in the index
	// fetched now: the caller was authorized to install the newest only.
	NewestOnly bool
}

// Result describes a finished (or planned) upgrade.
type Result struct {
	Slot          layout.Slot
	From, Version layout.Version
	Name, Notes   string // of Version, from the signed index
	Resumed       bool
	AlreadyReady  bool // the inactive slot already held and verified this version
	Counts        [Object + 1]int
	DownloadBytes int64 // planned (remaining) download
	Fetched       int64 // bytes received in this run
	NeedBytes     int64
	FreeBytes     int64
	NeedInodes    int64
	FreeInodes    int64
	Drift         []clone.Drift
	// Clone is what the clone did in this run (zero when a resumed job
	// found it done): it links only the files the target keeps.
	Clone clone.Result
}

// Slots returns (active, inactive) after sanity checks that give a clear
// error for a broken root: current pointing nowhere, a slot that is a file.
func Slots(r layout.Root) (layout.Slot, layout.Slot, error) {
	active, err := r.CurrentSlot()
	if err != nil {
		return "", "", err
	}
	for _, s := range []layout.Slot{active, active.Other()} {
		st, err := os.Lstat(r.Slot(s))
		if errors.Is(err, os.ErrNotExist) && s != active {
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
// verified and recorded; the boot pointer is untouched.
func Upgrade(ctx context.Context, cfg *Config, o Options) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	defer delta.Release() // a daemon keeps no decoder memory between jobs
	report := func(p Progress) {
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	report(Progress{Phase: PhaseChecking})
	r := cfg.Root
	active, inactive, err := Slots(r)
	if err != nil {
		return nil, err
	}
	cur, err := readInstalled(r, active)
	if err != nil {
		return nil, fmt.Errorf("active slot %s: %w", active, err)
	}
	aRoot, err := slotfs.Open(r.Slot(active))
	if err != nil {
		return nil, err
	}
	defer aRoot.Close()
	// Decoding the active slot's manifest and the drift check read the
	// local disk only: they run while the index, the delivery list and the
	// target manifest come over the network (the manifest delta needs only
	// the active manifest's bytes).
	var drift []clone.Drift
	var decodeErr, driftErr error
	dctx, dcancel := context.WithCancel(ctx)
	decoded, driftDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(driftDone)
		decodeErr = cur.decode()
		close(decoded)
		if decodeErr == nil {
			drift, driftErr = clone.DetectDrift(dctx, aRoot, cur.Manifest, defaultWorkers(cfg.Workers))
		}
	}()
	defer func() { dcancel(); <-driftDone }() // before aRoot.Close
	rm, err := OpenRemote(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	ref, err := rm.Pick(o.Version)
	if err != nil {
		return nil, err
	}
	res := &Result{Slot: inactive, From: cur.Version, Version: ref.Version, Name: ref.Name, Notes: ref.Notes}
	if l := rm.Index.Latest(); o.NewestOnly && l.Version != ref.Version {
		return res, fmt.Errorf("version %d is not the newest on the channel (%d is); installing another version needs an administrator: %w", ref.Version, l.Version, errdefs.ErrNotAuthorized)
	}
	switch {
	case ref.Version == cur.Version:
		return res, fmt.Errorf("version %d is already running: %w", cur.Version, errdefs.ErrUpToDate)
	case ref.Version < cur.Version && o.Version == 0:
		// Nothing newer is published (a channel switched to one behind
		// this machine): up to date, not a request for a downgrade.
		return res, fmt.Errorf("the newest version published, %d, is older than the running %d: %w", ref.Version, cur.Version, errdefs.ErrUpToDate)
	case ref.Version < cur.Version:
		return res, fmt.Errorf("version %d is older than the running %d; downgrades are refused: %w", ref.Version, cur.Version, errdefs.ErrInvalidArgument)
	}
	t, err := rm.LoadTargetFrom(ctx, ref, cur)
	<-decoded
	if decodeErr != nil {
		return res, fmt.Errorf("active slot %s: %w", active, decodeErr)
	}
	if err != nil {
		return res, err
	}
	cur.Raw = nil // only the manifest delta needed it; the heap is the budget
	defer limitMemory(len(cur.Manifest.Entries) + len(t.Manifest.Entries))()
	if err := os.MkdirAll(r.StagingDir(), 0755); err != nil {
		return res, err
	}
	// The target manifest's exact bytes are recorded with the slot at the
	// end; until then they wait in staging rather than in the heap (2-4 MiB
	// for a 15k-file tree, and the heap is the job's memory budget).
	spill := filepath.Join(r.StagingDir(), "manifest-"+ref.Manifest.SHA256.String())
	if err := os.WriteFile(spill, t.ManifestRaw, 0644); err != nil {
		return res, fullDisk(fmt.Errorf("stage the manifest: %w", err))
	}
	t.ManifestRaw = nil

	// Already built and recorded (e.g. a second Upgrade after ready-to-reboot)?
	// The record's version is enough (verifySlot checks the tree against
	// the target manifest): decoding the manifest of the previous version,
	// which the inactive slot usually holds, cost as much as the active's.
	if v, err := InstalledVersion(r, inactive); err == nil && v == ref.Version {
		if err := verifySlot(ctx, r, inactive, t.Manifest, cfg, nil, report); err == nil {
			res.AlreadyReady = true
			return res, nil
		}
	}

	<-driftDone
	if driftErr != nil {
		return res, fmt.Errorf("drift check of slot %s: %w", active, driftErr)
	}
	res.Drift = drift
	for _, d := range drift {
		cfg.Logf("drift: %s: %s (will be fetched, not cloned)", d.Path, d.Reason)
	}
	driftSet := map[string]bool{}
	for _, d := range drift {
		driftSet[d.Path] = true
	}
	plan, err := rm.Plan(ctx, cur.Manifest, driftSet, t)
	if err != nil {
		return res, err
	}
	res.Counts = plan.Counts
	res.DownloadBytes = plan.Remaining(r.StagingDir())
	if err := checkSpace(r, res, plan, cur.Manifest); err != nil {
		return res, err
	}
	if o.DryRun {
		return res, nil
	}

	j, _ := LoadJournal(r)
	res.Resumed = j != nil && j.Slot == inactive && j.Manifest == ref.Manifest.SHA256 && j.Cloned
	if !res.Resumed {
		j = &Journal{Job: o.Job, Slot: inactive, Version: ref.Version, Manifest: ref.Manifest.SHA256, Started: cfg.Now().UTC()}
	}
	if cfg.BeforeWrite != nil {
		if err := cfg.BeforeWrite(inactive); err != nil {
			return res, fmt.Errorf("prepare slot %s: %w", inactive, err)
		}
	} else if p, err := bootptr.Read(r.BootPointer()); err == nil && (p.Next == inactive || p.Good == inactive) {
		// Without the security service to move it, a pointer naming the slot
		// we are about to rewrite means a half-written slot could boot.
		return res, fmt.Errorf("the boot pointer names slot %s (next %s, good %s); only the security service may change that: %w",
			inactive, p.Next, p.Good, errdefs.ErrFailedPrecondition)
	}
	if err := InvalidateSlot(r, inactive); err != nil {
		return res, err
	}
	j.Phase = PhaseCloning
	if err := j.Save(r); err != nil {
		return res, err
	}
	bRoot, err := slotfs.Open(r.Slot(inactive))
	if err != nil {
		return res, err
	}
	defer bRoot.Close()
	if err := useScratch(bRoot, r.ScratchDir()); err != nil {
		return res, err
	}

	// The download does not depend on the clone, so it starts now and runs
	// while the clone works (the clone is metadata on the local disk, the
	// download network and hashing). Download progress is reported once
	// the clone is done.
	total := res.DownloadBytes
	before := rm.F.BytesReceived()
	var cloned atomic.Bool
	rm.SetProgress(func(done, tot int64) {
		if cloned.Load() {
			report(Progress{Phase: PhaseDownloading, BytesDone: done, BytesTotal: tot})
		}
	})
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	fetched := make(chan error, 1)
	go func() { fetched <- rm.F.Fetch(fctx, r.StagingDir(), plan.Blobs) }()
	if !res.Resumed {
		report(Progress{Phase: PhaseCloning})
		cur.Manifest = cloneSet(cur.Manifest, driftSet, t.Manifest)
		cr, err := clone.Clone(ctx, aRoot, bRoot, cur.Manifest, clone.Options{
			Workers:  defaultWorkers(cfg.Workers),
			Progress: func(done, total int) { report(Progress{Phase: PhaseCloning, ItemsDone: done, ItemsTotal: total}) },
		})
		if err != nil {
			fcancel()
			<-fetched
			return res, fmt.Errorf("clone %s to %s: %w", active, inactive, err)
		}
		cfg.Logf("cloned %s to %s: %d linked, %d kept, %d removed, %d dirs", active, inactive, cr.Linked, cr.Kept, cr.Removed, cr.Dirs)
		res.Clone = cr
		j.Cloned = true
	}
	cloned.Store(true)
	j.Phase = PhaseDownloading
	if err := j.Save(r); err != nil {
		fcancel()
		<-fetched
		return res, err
	}
	report(Progress{Phase: PhaseDownloading, BytesDone: rm.F.BytesReceived() - before, BytesTotal: total})
	err = <-fetched
	res.Fetched = rm.F.BytesReceived() - before
	j.Fetched += res.Fetched
	if err != nil {
		j.Save(r)
		return res, fullDisk(fmt.Errorf("download: %w", err))
	}

	j.Phase = PhaseApplying
	if err := j.Save(r); err != nil {
		return res, err
	}
	report(Progress{Phase: PhaseApplying, ItemsTotal: len(plan.Actions)})
	ap := &applier{a: aRoot, b: bRoot, t: t, p: plan, staging: r.StagingDir(), resume: res.Resumed, cloned: cur.Manifest, workers: defaultWorkers(cfg.Workers),
		progress: func(done, total int) { report(Progress{Phase: PhaseApplying, ItemsDone: done, ItemsTotal: total}) }}
	if err := ap.run(ctx); err != nil {
		return res, fullDisk(err)
	}
	delta.Release() // the decoders and frame buffers: verification needs none
	j.Phase = PhaseVerifying
	if err := j.Save(r); err != nil {
		return res, err
	}
	// Files this job wrote are not read again: their bytes were hashed and
	// checked against the manifest as they were written, by this process,
	// into the slot nothing else writes (their metadata, and everything
	// else, is checked as usual; the security service checks all again).
	if err := verifySlot(ctx, r, inactive, t.Manifest, cfg, ap.Written, report); err != nil {
		return res, err
	}
	manifestRaw, err := os.ReadFile(spill)
	if err == nil && digest.Of(manifestRaw) != ref.Manifest.SHA256 {
		err = fmt.Errorf("digest changed: %w", errdefs.ErrCorrupt)
	}
	if err != nil {
		return res, fmt.Errorf("staged manifest %s: %w", spill, err)
	}
	if err := SaveInstalled(r, inactive, ref.Version, rm.IndexRaw, manifestRaw); err != nil {
		return res, err
	}
	if err := ClearJournal(r); err != nil {
		cfg.Logf("%v", err) // past the point of no return: log, do not undo
	}
	if err := os.RemoveAll(r.StagingDir()); err != nil {
		cfg.Logf("clean staging: %v", err)
	}
	report(Progress{Phase: PhaseDone, BytesDone: total, BytesTotal: total})
	return res, nil
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
func checkSpace(r layout.Root, res *Result, p *Plan, active *manifest.Manifest) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(r.StateDir(), &sfs); err != nil {
		return fmt.Errorf("statfs %s: %w", r.StateDir(), err)
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
