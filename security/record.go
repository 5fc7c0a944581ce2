package security

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
)

// SlotRecord is what the security service itself verified in a slot. The
// daemon's records under var/lib/upgrade are only ever an input to verify:
// a daemon that deletes or rewrites them must not lower the bar.
type SlotRecord struct {
	Version  layout.Version `json:"version"`
	Name     string         `json:"name,omitempty"`
	Channel  string         `json:"channel"`
	Hardware string         `json:"hardware,omitempty"`
	Manifest digest.Digest  `json:"manifest_sha256"`
}

// Record is the security service's own state (R/var/lib/securityd/record.json):
// what each slot held when it verified it, the newest index it has seen, and
// the key ids it trusted then (the root of trust a later key rotation starts from).
type Record struct {
	Slots map[layout.Slot]SlotRecord `json:"slots"`
	Seen  *repo.Seen                 `json:"seen,omitempty"` // the newest timestamp and snapshot accepted
	Keys  []string                   `json:"keys"`
}

// load reads the record; a missing or unreadable one is empty, so that the
// running version is established again by verification.
func (s *Service) load() *Record {
	rec := &Record{}
	b, err := os.ReadFile(s.Root.SecurityRecord())
	if err == nil {
		err = json.Unmarshal(b, rec)
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.logf("own record unreadable (%v); establishing the running version again", err)
		}
		rec = &Record{}
	}
	if rec.Slots == nil {
		rec.Slots = map[layout.Slot]SlotRecord{}
	}
	return rec
}

func (s *Service) save(rec *Record) error {
	rec.Keys = rec.Keys[:0]
	for id := range s.Keys {
		rec.Keys = append(rec.Keys, id)
	}
	sort.Strings(rec.Keys)
	b, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Root.SecurityDir(), 0700); err != nil {
		return err
	}
	if err := atomicfile.Write(s.Root.SecurityRecord(), append(b, '\n'), 0600); err != nil {
		return fmt.Errorf("write own record: %w", err)
	}
	return nil
}

// sawIndex raises the newest metadata seen to sg's, if its timestamp is newer.
func (rec *Record) sawIndex(sg repo.Seen) {
	if sg.Timestamp == nil {
		return
	}
	if rec.Seen == nil || repo.MetaVersionOf(sg.Timestamp) > repo.MetaVersionOf(rec.Seen.Timestamp) {
		rec.Seen = &sg
	}
}

// saveRoot keeps root b as the service's trusted root when it is newer
// than the one kept: a key revoked by a rotation stays revoked whatever
// slot boots, even one shipping an older root.
func (s *Service) saveRoot(b []byte) error {
	if b == nil {
		return nil
	}
	if old, err := os.ReadFile(s.Root.SecurityRoot()); err == nil && repo.MetaVersionOf(old) >= repo.MetaVersionOf(b) {
		return nil
	}
	if err := os.MkdirAll(s.Root.SecurityDir(), 0700); err != nil {
		return err
	}
	if err := atomicfile.Write(s.Root.SecurityRoot(), b, 0600); err != nil {
		return fmt.Errorf("write trusted root: %w", err)
	}
	s.logf("trusted root is now version %d", repo.MetaVersionOf(b))
	return nil
}
