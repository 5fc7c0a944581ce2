// Package security is the security service's logic: it alone decides what
// may boot. It verifies a slot against the signed index and manifest
// recorded with it, using only its own trusted keys, and only then writes
// the boot pointer. It never uses the network and never trusts the upgrade
// daemon's word about what a slot holds.
package security

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"laptop.org/upgrade/digest"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

// DefaultTries is how many boots a new slot gets to reach boot-complete.
const DefaultTries = 3

// Service holds the keys and serialises every pointer change.
type Service struct {
	Root layout.Root
	// TrustedRoot is the TUF root shipped in the running slot
	// (etc/upgrade/root.json): where trust starts until the service keeps
	// its own (R/var/lib/securityd/root.json).
	TrustedRoot []byte
	// Keys are the keys of the format before TUF: they adopt a first root
	// they signed, and verify slots installed before the migration.
	Keys   repo.Keyring
	Policy *manifest.Policy // nil: manifest.DefaultPolicy
	Tries  int
	Logf   func(string, ...any)
	Now    func() time.Time // expiry reference; nil: time.Now

	mu sync.Mutex // one pointer writer at a time
}

// Slot describes a verified slot.
type Slot struct {
	Slot    layout.Slot
	Version layout.Version
	Name    string
}

// signed is a slot's signed metadata, checked against the service's keys.
type signed struct {
	m    *manifest.Manifest
	ref  *repo.VersionRef
	x    *repo.Index
	seen repo.Seen
	root []byte // the trusted root after walking the slot's chain (nil: legacy)
}

// record is what the service keeps about a slot holding sg.
func (sg *signed) record() SlotRecord {
	hw := sg.m.Hardware
	if hw == "" {
		hw = sg.x.Hardware
	}
	return SlotRecord{Version: sg.ref.Version, Name: sg.ref.Name, Channel: sg.x.Channel, Hardware: hw, Manifest: sg.ref.Manifest.SHA256}
}

// signedManifest checks the slot's recorded metadata with the service's
// own trusted root and that the recorded manifest is one the targets pin.
// With exp.Now set (activation) it runs the whole TUF workflow: root
// chain, timestamp, snapshot and targets, fresh and not older than what
// the service has seen; without (a slot already installed) only the
// targets must be signed by the targets role of the trusted root.
func (s *Service) signedManifest(ctx context.Context, sl layout.Slot, exp repo.Expect) (*signed, error) {
	bundle, err := os.ReadFile(s.Root.SlotIndex(sl))
	if err != nil {
		return nil, fmt.Errorf("slot %s has no signed index: %w", sl, errdefs.ErrVerification)
	}
	var v *repo.Verifier
	var x *repo.Index
	if exp.Now.IsZero() {
		v, x, err = repo.OpenTargets(ctx, bundle, s.trust())
	} else {
		v, x, err = repo.OpenBundle(ctx, bundle, s.trust(), exp)
	}
	sg := &signed{x: x}
	if err != nil && exp.Now.IsZero() && len(s.Keys) > 0 {
		// A slot installed before the migration to TUF.
		if lx, lerr := repo.OpenLegacyIndex(ctx, bundle, s.Keys, exp, nil); lerr == nil {
			sg.x, err = lx, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", sl, err)
	}
	if v != nil && sg.x == x {
		sg.seen, sg.root = v.Seen(), v.Root()
	}
	x = sg.x
	raw, err := os.ReadFile(s.Root.SlotManifest(sl))
	if err != nil {
		return nil, fmt.Errorf("slot %s has no manifest: %w", sl, errdefs.ErrVerification)
	}
	var ref *repo.VersionRef
	d := digest.Of(raw)
	for i := range x.Versions {
		if x.Versions[i].Manifest.SHA256 == d && x.Versions[i].Manifest.Size == int64(len(raw)) {
			ref = &x.Versions[i]
		}
	}
	if ref == nil {
		return nil, fmt.Errorf("slot %s: its manifest is not pinned by its signed index: %w", sl, errdefs.ErrBadSignature)
	}
	m, err := manifest.Decode(raw, s.policy())
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", sl, err)
	}
	if m.Version != ref.Version || m.Channel != x.Channel {
		return nil, fmt.Errorf("slot %s: manifest says version %d channel %q, index says %d %q: %w", sl, m.Version, m.Channel, ref.Version, x.Channel, errdefs.ErrBadSignature)
	}
	sg.m, sg.ref = m, ref
	return sg, nil
}

// trust is where the service's trust starts: its own root, else the
// shipped one, else the keys of the format before TUF.
func (s *Service) trust() repo.Trust {
	tr := repo.Trust{Root: s.TrustedRoot, Legacy: s.Keys}
	if b, err := os.ReadFile(s.Root.SecurityRoot()); err == nil {
		tr.Root = b
	}
	return tr
}

func (s *Service) policy() manifest.Policy {
	if s.Policy != nil {
		return *s.Policy
	}
	return manifest.DefaultPolicy
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// verifyTree checks every entry of slot sl against m, with nothing extra.
func (s *Service) verifyTree(ctx context.Context, sl layout.Slot, m *manifest.Manifest) error {
	root, err := slotfs.Open(s.Root.Slot(sl))
	if err != nil {
		return fmt.Errorf("slot %s: %v: %w", sl, err, errdefs.ErrVerification)
	}
	defer root.Close()
	if err := verify.Slot(ctx, root, m, verify.Options{}); err != nil {
		return fmt.Errorf("slot %s: %w", sl, err)
	}
	return nil
}

// Verify checks slot sl completely: signature, pin, and every entry of the
// tree with nothing extra. A failure names the first bad path and why.
func (s *Service) Verify(ctx context.Context, sl layout.Slot) (Slot, error) {
	sg, err := s.signedManifest(ctx, sl, repo.Expect{})
	if err != nil {
		return Slot{}, err
	}
	if err := s.verifyTree(ctx, sl, sg.m); err != nil {
		return Slot{}, err
	}
	return Slot{Slot: sl, Version: sg.ref.Version, Name: sg.ref.Name}, nil
}

// versionOf reads a slot's signed version without checking its files (for
// reporting only: never for a decision).
func (s *Service) versionOf(sl layout.Slot, rec *Record) (layout.Version, error) {
	if r, ok := rec.Slots[sl]; ok {
		return r.Version, nil
	}
	sg, err := s.signedManifest(context.TODO(), sl, repo.Expect{})
	if err != nil {
		return 0, err
	}
	return sg.ref.Version, nil
}

// running returns what the booted slot holds by the service's own record.
// Without one it is established by verifying the whole running slot against
// its signed manifest; when that fails nothing can be activated, since
// nothing would be known to be newer.
func (s *Service) running(ctx context.Context, booted layout.Slot, rec *Record) (SlotRecord, error) {
	if r, ok := rec.Slots[booted]; ok {
		return r, nil
	}
	sg, err := s.signedManifest(ctx, booted, repo.Expect{})
	if err == nil {
		err = s.verifyTree(ctx, booted, sg.m)
	}
	if err != nil {
		return SlotRecord{}, fmt.Errorf("the running version cannot be established (%v): %w", err, errdefs.ErrFailedPrecondition)
	}
	rec.Slots[booted] = sg.record()
	rec.sawIndex(sg.seen)
	if err := s.save(rec); err != nil {
		return SlotRecord{}, err
	}
	s.logf("running slot %s verified: version %d", booted, sg.ref.Version)
	return rec.Slots[booted], nil
}

// admissible checks what the service requires of a slot to activate beyond
// its signature: the running version's channel and hardware, and a newer
// version than the running one.
func admissible(sl layout.Slot, sg *signed, run SlotRecord) error {
	if run.Channel != "" && sg.x.Channel != run.Channel {
		return fmt.Errorf("slot %s holds channel %q, the running version %d follows %q: %w", sl, sg.x.Channel, run.Version, run.Channel, errdefs.ErrPolicy)
	}
	if hw := run.Hardware; hw != "" {
		for _, h := range []string{sg.x.Hardware, sg.m.Hardware} {
			if h != "" && h != hw {
				return fmt.Errorf("slot %s holds a version for hardware %q, this machine runs %q: %w", sl, h, hw, errdefs.ErrPolicy)
			}
		}
	}
	if sg.ref.Version <= run.Version {
		return fmt.Errorf("slot %s holds version %d, not newer than the running %d: %w", sl, sg.ref.Version, run.Version, errdefs.ErrDowngrade)
	}
	return nil
}

func (s *Service) pointer(booted layout.Slot) bootptr.Pointer {
	p, err := bootptr.Read(s.Root.BootPointer())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.logf("boot pointer unreadable (%v); starting from the booted slot", err)
		}
		return bootptr.Pointer{Next: booted, Good: booted}
	}
	return p
}

func (s *Service) write(p bootptr.Pointer) error {
	if err := os.MkdirAll(s.Root.SecurityDir(), 0700); err != nil {
		return err
	}
	return bootptr.Write(s.Root.BootPointer(), p)
}

// Activate verifies sl and makes it the next boot, on trial. It refuses the
// running slot, a slot whose index is expired or older than one the service
// has seen, another channel or hardware than the running version's, and
// anything not newer than the running version, all by its own record.
func (s *Service) Activate(ctx context.Context, sl layout.Slot, tries int) (Slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	booted, err := s.Root.CurrentSlot()
	if err != nil {
		return Slot{}, err
	}
	if sl == booted {
		return Slot{}, fmt.Errorf("slot %s is the running slot: %w", sl, errdefs.ErrInvalidArgument)
	}
	rec := s.load()
	run, err := s.running(ctx, booted, rec)
	if err != nil {
		return Slot{}, err
	}
	sg, err := s.signedManifest(ctx, sl, repo.Expect{Now: s.now(), Seen: rec.Seen})
	if err != nil {
		return Slot{}, err
	}
	if err := admissible(sl, sg, run); err != nil {
		return Slot{}, err
	}
	before, err := treeState(s.Root.Slot(sl))
	if err != nil {
		return Slot{}, fmt.Errorf("slot %s: %v: %w", sl, err, errdefs.ErrVerification)
	}
	if err := s.verifyTree(ctx, sl, sg.m); err != nil {
		return Slot{}, err
	}
	// The slot's data must be on disk before the pointer names it.
	root, err := slotfs.Open(s.Root.Slot(sl))
	if err != nil {
		return Slot{}, err
	}
	err = root.SyncFS()
	root.Close()
	if err != nil {
		return Slot{}, fmt.Errorf("sync slot %s: %w", sl, err)
	}
	if err := s.recheck(sl, before); err != nil {
		return Slot{}, err
	}
	if tries <= 0 {
		tries = s.Tries
	}
	if tries <= 0 {
		tries = DefaultTries
	}
	rec.Slots[sl] = sg.record()
	rec.sawIndex(sg.seen)
	if err := s.saveRoot(sg.root); err != nil {
		return Slot{}, err
	}
	if err := s.save(rec); err != nil {
		return Slot{}, err
	}
	if err := s.write(s.pointer(booted).WithTrial(sl, tries)); err != nil {
		return Slot{}, fmt.Errorf("write boot pointer: %w", err)
	}
	s.logf("next boot: slot %s version %d on trial (%d tries)", sl, sg.ref.Version, tries)
	return Slot{Slot: sl, Version: sg.ref.Version, Name: sg.ref.Name}, nil
}

// Invalidate makes sure the pointer does not name sl, before the daemon
// writes into it. Writing into the fallback of a slot still on trial is
// refused: that slot is the only way back.
func (s *Service) Invalidate(sl layout.Slot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	booted, err := s.Root.CurrentSlot()
	if err != nil {
		return err
	}
	if sl == booted {
		return fmt.Errorf("slot %s is the running slot: %w", sl, errdefs.ErrInvalidArgument)
	}
	p := s.pointer(booted)
	if p.Trial && p.Next == booted && p.Good == sl {
		return fmt.Errorf("the running slot %s is on trial and slot %s is its fallback; mark the running slot good first: %w", booted, sl, errdefs.ErrFailedPrecondition)
	}
	if rec := s.load(); rec.Slots[sl] != (SlotRecord{}) {
		delete(rec.Slots, sl)
		if err := s.save(rec); err != nil {
			return err
		}
	}
	if p.Next != sl && p.Good != sl {
		return nil
	}
	p.Next, p.Good, p.Trial, p.Tries = booted, booted, false, 0
	if err := s.write(p); err != nil {
		return fmt.Errorf("write boot pointer: %w", err)
	}
	s.logf("slot %s invalidated; next boot: %s", sl, booted)
	return nil
}

// MarkGood records that the running slot reached boot-complete.
func (s *Service) MarkGood() (layout.Slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	booted, err := s.Root.CurrentSlot()
	if err != nil {
		return "", err
	}
	p := s.pointer(booted)
	q := p.MarkGood(booted)
	if q.Good == p.Good && q.Trial == p.Trial && q.Failed == p.Failed {
		return booted, nil
	}
	if err := s.write(q); err != nil {
		return "", fmt.Errorf("write boot pointer: %w", err)
	}
	s.logf("slot %s marked good", booted)
	return booted, nil
}

// Rollback goes back one step and returns the slot that boots next.
//
// With an upgrade pending (the other slot is next, on trial, never booted)
// going back means withdrawing it: the running slot boots next, as before
// the upgrade. Making the untried slot next *and good* instead would take
// away its boot counting, so a build that never booted could not fall back.
//
// Otherwise the other slot boots next if it still verifies: without trial
// when it is the last known good slot, on trial when it is not (it may
// never have booted, or failed to), so boot counting still protects.
func (s *Service) Rollback(ctx context.Context) (Slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	booted, err := s.Root.CurrentSlot()
	if err != nil {
		return Slot{}, err
	}
	other := booted.Other()
	p := s.pointer(booted)
	rec := s.load()
	if p.Next == other && p.Trial && p.Good != other {
		ver, err := s.versionOf(booted, rec)
		if err != nil {
			return Slot{}, fmt.Errorf("cannot withdraw the pending slot %s: the running slot %s: %w", other, booted, err)
		}
		p.Next, p.Good, p.Trial, p.Tries = booted, booted, false, 0
		p.Seq++
		if err := s.write(p); err != nil {
			return Slot{}, fmt.Errorf("write boot pointer: %w", err)
		}
		s.logf("rollback: pending slot %s withdrawn; next boot slot %s version %d", other, booted, ver)
		return Slot{Slot: booted, Version: ver}, nil
	}
	sg, err := s.signedManifest(ctx, other, repo.Expect{})
	if err == nil {
		err = s.verifyTree(ctx, other, sg.m)
	}
	if err != nil {
		return Slot{}, fmt.Errorf("cannot roll back: %w", err)
	}
	got := Slot{Slot: other, Version: sg.ref.Version, Name: sg.ref.Name}
	rec.Slots[other] = sg.record()
	if err := s.save(rec); err != nil {
		return Slot{}, err
	}
	if other == p.Good {
		p = p.Rollback(other)
	} else {
		tries := s.Tries
		if tries <= 0 {
			tries = DefaultTries
		}
		p = p.WithTrial(other, tries)
	}
	if err := s.write(p); err != nil {
		return Slot{}, fmt.Errorf("write boot pointer: %w", err)
	}
	s.logf("rollback: next boot slot %s version %d (trial %v)", got.Slot, got.Version, p.Trial)
	return got, nil
}

// Pointer returns the current boot pointer (or the implied one).
func (s *Service) Pointer() (bootptr.Pointer, error) {
	booted, err := s.Root.CurrentSlot()
	if err != nil {
		return bootptr.Pointer{}, err
	}
	return s.pointer(booted), nil
}

func (s *Service) logf(f string, a ...any) {
	if s.Logf != nil {
		s.Logf(f, a...)
	}
}
