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
	Root   layout.Root
	Keys   repo.Keyring
	Policy *manifest.Policy // nil: manifest.DefaultPolicy
	Tries  int
	Logf   func(string, ...any)

	mu sync.Mutex // one pointer writer at a time
}

// Slot describes a verified slot.
type Slot struct {
	Slot    layout.Slot
	Version uint64
	Name    string
}

// signedManifest checks the slot's recorded index signature and that the
// recorded manifest is the one the index pins, returning the manifest.
func (s *Service) signedManifest(sl layout.Slot) (*manifest.Manifest, *repo.VersionRef, error) {
	idxRaw, err := os.ReadFile(s.Root.SlotIndex(sl))
	if err != nil {
		return nil, nil, fmt.Errorf("slot %s has no signed index: %w", sl, errdefs.ErrVerification)
	}
	x, err := repo.OpenIndex(context.TODO(), idxRaw, s.Keys, repo.Expect{})
	if err != nil {
		return nil, nil, fmt.Errorf("slot %s: %w", sl, err)
	}
	raw, err := os.ReadFile(s.Root.SlotManifest(sl))
	if err != nil {
		return nil, nil, fmt.Errorf("slot %s has no manifest: %w", sl, errdefs.ErrVerification)
	}
	var ref *repo.VersionRef
	d := digest.Of(raw)
	for i := range x.Versions {
		if x.Versions[i].Manifest.SHA256 == d && x.Versions[i].Manifest.Size == int64(len(raw)) {
			ref = &x.Versions[i]
		}
	}
	if ref == nil {
		return nil, nil, fmt.Errorf("slot %s: its manifest is not pinned by its signed index: %w", sl, errdefs.ErrBadSignature)
	}
	pol := manifest.DefaultPolicy
	if s.Policy != nil {
		pol = *s.Policy
	}
	m, err := manifest.Decode(raw, pol)
	if err != nil {
		return nil, nil, fmt.Errorf("slot %s: %w", sl, err)
	}
	if m.Version != ref.Version {
		return nil, nil, fmt.Errorf("slot %s: manifest version %d, index says %d: %w", sl, m.Version, ref.Version, errdefs.ErrBadSignature)
	}
	return m, ref, nil
}

// Verify checks slot sl completely: signature, pin, and every entry of the
// tree with nothing extra. A failure names the first bad path and why.
func (s *Service) Verify(ctx context.Context, sl layout.Slot) (Slot, error) {
	m, ref, err := s.signedManifest(sl)
	if err != nil {
		return Slot{}, err
	}
	root, err := slotfs.Open(s.Root.Slot(sl))
	if err != nil {
		return Slot{}, fmt.Errorf("slot %s: %v: %w", sl, err, errdefs.ErrVerification)
	}
	defer root.Close()
	if err := verify.Slot(ctx, root, m, verify.Options{}); err != nil {
		return Slot{}, fmt.Errorf("slot %s: %w", sl, err)
	}
	return Slot{Slot: sl, Version: ref.Version, Name: ref.Name}, nil
}

// versionOf reads a slot's signed version without checking its files (for
// the anti-rollback comparison with the running slot).
func (s *Service) versionOf(sl layout.Slot) (uint64, error) {
	_, ref, err := s.signedManifest(sl)
	if err != nil {
		return 0, err
	}
	return ref.Version, nil
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
// running slot and anything not newer than the running version.
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
	got, err := s.Verify(ctx, sl)
	if err != nil {
		return Slot{}, err
	}
	if cur, err := s.versionOf(booted); err == nil && got.Version <= cur {
		return Slot{}, fmt.Errorf("slot %s holds version %d, not newer than the running %d (rollback refused): %w", sl, got.Version, cur, errdefs.ErrBadSignature)
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
	if tries <= 0 {
		tries = s.Tries
	}
	if tries <= 0 {
		tries = DefaultTries
	}
	if err := s.write(s.pointer(booted).WithTrial(sl, tries)); err != nil {
		return Slot{}, fmt.Errorf("write boot pointer: %w", err)
	}
	s.logf("next boot: slot %s version %d on trial (%d tries)", sl, got.Version, tries)
	return got, nil
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
	if p.Next == other && p.Trial && p.Good != other {
		ver, err := s.versionOf(booted)
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
	got, err := s.Verify(ctx, other)
	if err != nil {
		return Slot{}, fmt.Errorf("cannot roll back: %w", err)
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
