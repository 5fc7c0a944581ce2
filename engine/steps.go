package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/slotfs"
)

// The steps that read: an upgrade's first ones, and all of a check's.

// check finds the slots and the active slot's record, starts reading the
// active slot in the background (its manifest decoded, its drift checked),
// opens the signed index and picks the target. It refuses a target that is
// running, older, or (NewestOnly) not the newest. It writes nothing but the
// index's last-seen record, and that only for an index newer than the one
// seen. A resumed job runs it again: it keeps no state of its own.
func (u *run) check(ctx context.Context) error {
	u.report(Progress{Phase: PhaseChecking})
	var err error
	if u.active, u.inactive, err = slots(u.r, !u.readOnly); err != nil {
		return err
	}
	if u.cur, err = readInstalled(u.r, u.active); err != nil {
		return fmt.Errorf("active slot %s: %w", u.active, err)
	}
	if u.aRoot, err = slotfs.Open(u.r.Slot(u.active)); err != nil {
		return err
	}
	u.scanActive()
	if u.rm, err = OpenRemote(ctx, u.cfg, nil); err != nil {
		return err
	}
	u.rm.readOnly = u.readOnly
	if u.ref, err = u.rm.Pick(u.o.Version); err != nil {
		return err
	}
	ref, cur := u.ref, u.cur.Version
	u.res = &Result{Slot: u.inactive, From: cur, Version: ref.Version, Name: ref.Name, Notes: ref.Notes}
	if l := u.rm.Index.Latest(); u.o.NewestOnly && l.Version != ref.Version {
		return fmt.Errorf("version %d is not the newest on the channel (%d is); installing another version needs an administrator: %w", ref.Version, l.Version, errdefs.ErrNotAuthorized)
	}
	switch {
	case ref.Version == cur:
		return fmt.Errorf("version %d is already running: %w", cur, errdefs.ErrUpToDate)
	case ref.Version < cur && u.o.Version == 0:
		// Nothing newer is published (a channel switched to one behind
		// this machine): up to date, not a request for a downgrade.
		return fmt.Errorf("the newest version published, %d, is older than the running %d: %w", ref.Version, cur, errdefs.ErrUpToDate)
	case ref.Version < cur:
		return fmt.Errorf("version %d is older than the running %d; downgrades are refused: %w", ref.Version, cur, errdefs.ErrInvalidArgument)
	}
	return nil
}

// scanActive decodes the active slot's manifest and checks the slot for
// drift in the background: both read the local disk only, so they overlap
// the index, delivery list and manifest coming over the network.
func (u *run) scanActive() {
	u.decoded = u.start(func(context.Context) error { return u.cur.decode() })
	u.scanned = u.start(func(ctx context.Context) error {
		if err := u.decoded.wait(); err != nil {
			return err
		}
		var err error
		u.drift, err = clone.DetectDrift(ctx, u.aRoot, u.cur.Manifest, defaultWorkers(u.cfg.Workers))
		return err
	})
}

// target fetches the target's delivery list and manifest (the manifest
// patched from the active one's when the list offers a delta) and checks
// them against the index's pins. An upgrade stages the manifest's exact
// bytes until record; a check keeps nothing. A resumed job finds the
// documents in staging and does not fetch them again.
func (u *run) target(ctx context.Context) error {
	t, err := u.rm.LoadTargetFrom(ctx, u.ref, u.cur)
	if derr := u.decoded.wait(); derr != nil {
		return fmt.Errorf("active slot %s: %w", u.active, derr)
	}
	if err != nil {
		return err
	}
	u.t = t
	u.cur.Raw = nil // only the manifest delta needed it; the heap is the budget
	u.unlimit = limitMemory(len(u.cur.Manifest.Entries) + len(t.Manifest.Entries))
	if u.readOnly {
		t.ManifestRaw = nil
		return nil
	}
	// The bytes wait in staging rather than in the heap (2-4 MiB for a
	// 15k-file tree), as the heap is the job's memory budget.
	if err := os.MkdirAll(u.r.StagingDir(), 0755); err != nil {
		return err
	}
	u.spill = filepath.Join(u.r.StagingDir(), "manifest-"+u.ref.Manifest.SHA256.String())
	if err := os.WriteFile(u.spill, t.ManifestRaw, 0644); err != nil {
		return fullDisk(fmt.Errorf("stage the manifest: %w", err))
	}
	t.ManifestRaw = nil
	return nil
}

// ready ends an upgrade early when the inactive slot already holds the
// target, recorded and verified now (a second Upgrade after
// ready-to-reboot). The record's version is enough to try: the tree is
// verified against the target manifest, so a stale record only costs the
// verification, and the job then builds the slot again.
func (u *run) ready(ctx context.Context) error {
	if v, err := u.r.InstalledVersion(u.inactive); err != nil || v != u.ref.Version {
		return nil
	}
	if err := verifySlot(ctx, u.r, u.inactive, u.t.Manifest, u.cfg, nil, u.report); err != nil {
		u.cfg.Logf("slot %s is recorded as version %d but does not verify (building it again): %v", u.inactive, u.ref.Version, err)
		return nil
	}
	u.res.AlreadyReady, u.done = true, true
	return nil
}

// recorded is ready for a check, which reads records and no tree: the
// inactive slot is ready when its record pins the target's manifest. The
// security service verifies the whole slot before the next boot may use
// it, and an Upgrade verifies it too.
func (u *run) recorded(context.Context) error {
	if v, err := u.r.InstalledVersion(u.inactive); err != nil || v != u.ref.Version {
		return nil
	}
	raw, err := os.ReadFile(u.r.SlotManifest(u.inactive))
	if err == nil && digest.Of(raw) == u.ref.Manifest.SHA256 {
		u.res.AlreadyReady, u.done = true, true
	}
	return nil
}

// plan joins the active slot's drift check, compares the target with what
// the clone will hold and prices the difference: download, disk space and
// inodes, refused when they do not fit. It writes nothing; a resumed job
// plans again, and what staging already holds is not counted again.
func (u *run) plan(ctx context.Context) error {
	if err := u.scanned.wait(); err != nil {
		return fmt.Errorf("drift check of slot %s: %w", u.active, err)
	}
	u.res.Drift = u.drift
	u.driftSet = map[string]bool{}
	for _, d := range u.drift {
		if !u.readOnly {
			u.cfg.Logf("drift: %s: %s (will be fetched, not cloned)", d.Path, d.Reason)
		}
		u.driftSet[d.Path] = true
	}
	plan, err := u.rm.Plan(ctx, u.cur.Manifest, u.driftSet, u.t)
	if err != nil {
		return err
	}
	u.p = plan
	u.res.Counts = plan.Counts
	u.res.DownloadBytes = plan.Remaining(u.r.StagingDir())
	return checkSpace(u.r, u.res, plan)
}
