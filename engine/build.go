package engine

import (
	"context"
	"fmt"
	"os"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/slotfs"
)

// The steps that write, into the inactive slot and the state directory
// only: an upgrade's after plan.

// prepare claims the inactive slot: the journal (kept when it is for the
// same target and its clone finished, so that the job resumes), the boot
// pointer guard, the slot's record removed before anything is written
// into it, and the slot opened with an empty scratch directory. A resumed
// job runs it again: every part is idempotent.
func (u *run) prepare(context.Context) error {
	j, err := LoadJournal(u.r)
	if err != nil {
		u.cfg.Logf("journal: %v (starting over)", err)
	}
	ref := u.ref
	u.res.Resumed = j != nil && j.Slot == u.inactive && j.Manifest == ref.Manifest.SHA256 && j.Cloned
	if !u.res.Resumed {
		j = &Journal{Job: u.o.Job, Slot: u.inactive, Version: ref.Version, Manifest: ref.Manifest.SHA256, Started: u.cfg.Now().UTC()}
	}
	u.j = j
	if err := u.guardPointer(); err != nil {
		return err
	}
	if err := InvalidateSlot(u.r, u.inactive); err != nil {
		return err
	}
	u.j.Phase = PhaseCloning
	if err := u.j.Save(u.r); err != nil {
		return err
	}
	if u.bRoot, err = slotfs.Open(u.r.Slot(u.inactive)); err != nil {
		return err
	}
	return useScratch(u.bRoot, u.r.ScratchDir())
}

// guardPointer makes sure the boot pointer does not name the slot about to
// be rewritten: through the security service (Config.BeforeWrite) when
// there is one, else by refusing, as a half-written slot could boot.
func (u *run) guardPointer() error {
	s := u.inactive
	if u.cfg.BeforeWrite != nil {
		if err := u.cfg.BeforeWrite(s); err != nil {
			return fmt.Errorf("prepare slot %s: %w", s, err)
		}
		return nil
	}
	if p, err := bootptr.Read(u.r.BootPointer()); err == nil && (p.Next == s || p.Good == s) {
		return fmt.Errorf("the boot pointer names slot %s (next %s, good %s); only the security service may change that: %w",
			s, p.Next, p.Good, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// clone starts the download in the background, as it does not depend on
// the clone (the clone is metadata on the local disk, the download network
// and hashing), then hard-links into the inactive slot what the target
// keeps of the active one. A resumed job whose journal says the clone
// finished does not clone again.
func (u *run) clone(ctx context.Context) error {
	u.fetchedBefore = u.rm.F.BytesReceived()
	u.rm.SetProgress(func(done, total int64) {
		if u.cloned.Load() {
			u.report(Progress{Phase: PhaseDownloading, BytesDone: done, BytesTotal: total})
		}
	})
	blobs := u.p.Blobs
	u.fetched = u.start(func(ctx context.Context) error { return u.rm.F.Fetch(ctx, u.r.StagingDir(), blobs) })
	if !u.res.Resumed {
		u.report(Progress{Phase: PhaseCloning})
		u.cur.Manifest = cloneSet(u.cur.Manifest, u.driftSet, u.t.Manifest)
		cr, err := clone.Clone(ctx, u.aRoot, u.bRoot, u.cur.Manifest, clone.Options{
			Workers:  defaultWorkers(u.cfg.Workers),
			Progress: func(done, total int) { u.report(Progress{Phase: PhaseCloning, ItemsDone: done, ItemsTotal: total}) },
		})
		if err != nil {
			return fmt.Errorf("%s to %s: %w", u.active, u.inactive, err)
		}
		u.cfg.Logf("cloned %s to %s: %d linked, %d kept, %d removed, %d dirs", u.active, u.inactive, cr.Linked, cr.Kept, cr.Removed, cr.Dirs)
		u.res.Clone = cr
		u.j.Cloned = true
	}
	u.cloned.Store(true)
	return nil
}

// fetch joins the download that clone started and counts its bytes in the
// journal. A resumed job's fetcher keeps what staging holds: whole blobs
// are not fetched again, partial ones continue from their offset.
func (u *run) fetch(context.Context) error {
	u.j.Phase = PhaseDownloading
	if err := u.j.Save(u.r); err != nil {
		return err
	}
	total := u.res.DownloadBytes
	u.report(Progress{Phase: PhaseDownloading, BytesDone: u.rm.F.BytesReceived() - u.fetchedBefore, BytesTotal: total})
	err := u.fetched.wait()
	u.res.Fetched = u.rm.F.BytesReceived() - u.fetchedBefore
	u.j.Fetched += u.res.Fetched
	if err != nil {
		if serr := u.j.Save(u.r); serr != nil {
			u.cfg.Logf("journal: %v", serr) // the count only; the download's error is the job's
		}
		return fullDisk(err)
	}
	return nil
}

// apply places every file of the plan in the inactive slot, never writing
// an inode that the active slot shares. A resumed job checks which files
// an earlier run placed and does not place them again.
func (u *run) apply(ctx context.Context) error {
	u.j.Phase = PhaseApplying
	if err := u.j.Save(u.r); err != nil {
		return err
	}
	u.report(Progress{Phase: PhaseApplying, ItemsTotal: len(u.p.Actions)})
	u.ap = &applier{a: u.aRoot, b: u.bRoot, t: u.t, p: u.p, staging: u.r.StagingDir(), resume: u.res.Resumed,
		cloned: u.cur.Manifest, workers: defaultWorkers(u.cfg.Workers),
		progress: func(done, total int) { u.report(Progress{Phase: PhaseApplying, ItemsDone: done, ItemsTotal: total}) }}
	if err := u.ap.run(ctx); err != nil {
		return fullDisk(err)
	}
	delta.Release() // the decoders and frame buffers: verification needs none
	return nil
}

// verify checks the inactive slot against the target manifest. Files this
// run wrote are not read again: their bytes were hashed and checked as
// they were written, by this process, into the slot nothing else writes
// (their metadata is checked as usual; the security service checks all
// again). A resumed job verifies from the start.
func (u *run) verify(ctx context.Context) error {
	u.j.Phase = PhaseVerifying
	if err := u.j.Save(u.r); err != nil {
		return err
	}
	return verifySlot(ctx, u.r, u.inactive, u.t.Manifest, u.cfg, u.written(), u.report)
}

// record writes the slot's record: the index, the staged manifest checked
// against its pin, and the version last, which marks the record complete.
// Then the job is done: a failure to clear the journal or staging is
// logged, not undone. A job interrupted before the version is written
// runs every step again (the clone skipped) and verifies again.
func (u *run) record(context.Context) error {
	manifestRaw, err := os.ReadFile(u.spill)
	if err == nil && digest.Of(manifestRaw) != u.ref.Manifest.SHA256 {
		err = fmt.Errorf("digest changed: %w", errdefs.ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("staged manifest %s: %w", u.spill, err)
	}
	if err := SaveInstalled(u.r, u.inactive, u.ref.Version, u.rm.IndexRaw, manifestRaw); err != nil {
		return err
	}
	if err := ClearJournal(u.r); err != nil {
		u.cfg.Logf("%v", err)
	}
	if err := os.RemoveAll(u.r.StagingDir()); err != nil {
		u.cfg.Logf("clean staging: %v", err)
	}
	total := u.res.DownloadBytes
	u.report(Progress{Phase: PhaseDone, BytesDone: total, BytesTotal: total})
	return nil
}
