package engine

import (
	"errors"
	"fmt"
	"os"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
)

// Installed is what a slot holds, as recorded when it was built: the signed
// index that pins its manifest, and the manifest. The security service
// re-verifies both against its own keys; the engine trusts its own records.
type Installed struct {
	Slot     layout.Slot
	Version  layout.Version
	Manifest *manifest.Manifest
	IndexRaw []byte
	Raw      []byte // manifest bytes
}

// recordPolicy decodes our own records: they passed the policy when fetched.
var recordPolicy = manifest.Policy{AllowSetuid: true, AllowDevices: true}

// LoadInstalled reads the record of slot; ErrNotFound when there is none
// (never built, or invalidated because a build started).
func LoadInstalled(r layout.Root, s layout.Slot) (*Installed, error) {
	inst, err := readInstalled(r, s)
	if err != nil {
		return nil, err
	}
	if err := inst.decode(); err != nil {
		return nil, err
	}
	return inst, nil
}

// readInstalled is LoadInstalled without decoding the manifest (Manifest
// is nil until decode): an upgrade needs only the raw bytes (the base of
// the manifest delta) while it asks the mirror for the target, and decodes
// them meanwhile.
func readInstalled(r layout.Root, s layout.Slot) (*Installed, error) {
	v, err := r.InstalledVersion(s)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(r.SlotManifest(s))
	if err != nil {
		return nil, fmt.Errorf("slot %s manifest: %w", s, err)
	}
	idx, err := os.ReadFile(r.SlotIndex(s))
	if err != nil {
		return nil, fmt.Errorf("slot %s index: %w", s, err)
	}
	return &Installed{Slot: s, Version: v, IndexRaw: idx, Raw: raw}, nil
}

// decode sets Manifest from Raw.
func (inst *Installed) decode() error {
	m, err := manifest.Decode(inst.Raw, recordPolicy)
	if err != nil {
		return fmt.Errorf("slot %s manifest: %w", inst.Slot, err)
	}
	inst.Manifest = m
	return nil
}

// SaveInstalled records what slot now holds. The version file is written
// last: it is what marks the record complete.
func SaveInstalled(r layout.Root, s layout.Slot, version layout.Version, indexRaw, manifestRaw []byte) error {
	if err := os.MkdirAll(r.SlotMetaDir(s), 0755); err != nil {
		return err
	}
	if err := atomicfile.Write(r.SlotIndex(s), indexRaw, 0644); err != nil {
		return err
	}
	if err := atomicfile.Write(r.SlotManifest(s), manifestRaw, 0644); err != nil {
		return err
	}
	return atomicfile.Write(r.SlotVersionFile(s), []byte(version.String()+"\n"), 0644)
}

// InvalidateSlot forgets what slot holds, before anything writes into it.
func InvalidateSlot(r layout.Root, s layout.Slot) error {
	err := os.Remove(r.SlotVersionFile(s))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("invalidate slot %s: %w", s, err)
	}
	if err := os.MkdirAll(r.SlotMetaDir(s), 0755); err != nil {
		return err
	}
	return atomicfile.SyncDir(r.SlotMetaDir(s))
}
