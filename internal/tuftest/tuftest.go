// Package tuftest rewrites TUF metadata as someone holding signing keys
// could: tests use it to play a release manager, a thief of one key, or a
// mirror replaying what was once signed.
package tuftest

import (
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/repo"
)

// Set is one consistent set of timestamp, snapshot and targets metadata.
type Set struct {
	Timestamp *metadata.Metadata[metadata.TimestampType]
	Snapshot  *metadata.Metadata[metadata.SnapshotType]
	Targets   *metadata.Metadata[metadata.TargetsType]
	Roots     [][]byte // a bundle's chain (FromBundle)
}

// FromBundle parses a slot's bundle.
func FromBundle(t testing.TB, raw []byte) *Set {
	t.Helper()
	b, err := repo.ParseBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	return FromBytes(t, b.Timestamp, b.Snapshot, b.Targets, b.Roots)
}

// FromBytes parses metadata files.
func FromBytes(t testing.TB, ts, snap, targets []byte, roots [][]byte) *Set {
	t.Helper()
	s := &Set{Roots: roots}
	var err error
	if s.Timestamp, err = metadata.Timestamp().FromBytes(ts); err != nil {
		t.Fatal(err)
	}
	if s.Snapshot, err = metadata.Snapshot().FromBytes(snap); err != nil {
		t.Fatal(err)
	}
	if s.Targets, err = metadata.Targets().FromBytes(targets); err != nil {
		t.Fatal(err)
	}
	return s
}

// Index is the set's targets as a client sees them.
func (s *Set) Index(t testing.TB) *repo.Index {
	t.Helper()
	b, err := s.Targets.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	x, err := repo.IndexOfTargets(b)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// SetIndex replaces the targets by x's versions (channel and hardware
// from x), as a publisher of x would.
func (s *Set) SetIndex(t testing.TB, x *repo.Index) {
	t.Helper()
	s.Targets.Signed.Targets = map[string]*metadata.TargetFiles{}
	for i := range x.Versions {
		ts, err := repo.VersionTargets(x.Channel, x.Hardware, &x.Versions[i])
		if err != nil {
			t.Fatal(err)
		}
		for n, f := range ts {
			s.Targets.Signed.Targets[n] = f
		}
	}
}

// Keys sign each role; a nil role is left as it is (its signatures kept).
type Keys struct {
	Targets, Snapshot, Timestamp []repo.PrivateKey
}

// All is one key for every role.
func All(k repo.PrivateKey) Keys {
	return Keys{Targets: []repo.PrivateKey{k}, Snapshot: []repo.PrivateKey{k}, Timestamp: []repo.PrivateKey{k}}
}

// Files bumps the versions of the roles keys sign, re-pins and re-signs
// them, and returns the repository files: N.targets.json,
// N.snapshot.json, timestamp.json. The timestamp stays valid for ttl.
func (s *Set) Files(t testing.TB, k Keys, ttl time.Duration) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if k.Targets != nil {
		s.Targets.Signed.Version++
		s.Targets.Signed.Expires = time.Now().Add(365 * 24 * time.Hour)
		sign(t, s.Targets, k.Targets)
	}
	tb := bytesOf(t, s.Targets)
	out[repo.MetaPathOf("targets", s.Targets.Signed.Version)] = tb
	if k.Snapshot != nil {
		s.Snapshot.Signed.Version++
		s.Snapshot.Signed.Meta["targets.json"] = pin(s.Targets.Signed.Version, tb)
		sign(t, s.Snapshot, k.Snapshot)
	}
	sb := bytesOf(t, s.Snapshot)
	out[repo.MetaPathOf("snapshot", s.Snapshot.Signed.Version)] = sb
	if k.Timestamp != nil {
		s.Timestamp.Signed.Version++
		s.Timestamp.Signed.Expires = time.Now().Add(ttl).UTC().Truncate(time.Second)
		s.Timestamp.Signed.Meta["snapshot.json"] = pin(s.Snapshot.Signed.Version, sb)
		sign(t, s.Timestamp, k.Timestamp)
	}
	out[repo.TimestampPath] = bytesOf(t, s.Timestamp)
	return out
}

// Bundle is Files as a slot's bundle (with the set's roots).
func (s *Set) Bundle(t testing.TB, k Keys, ttl time.Duration) []byte {
	t.Helper()
	f := s.Files(t, k, ttl)
	b, err := repo.MarshalBundle(repo.Bundle{
		Roots:     s.Roots,
		Timestamp: f[repo.TimestampPath],
		Snapshot:  f[repo.MetaPathOf("snapshot", s.Snapshot.Signed.Version)],
		Targets:   f[repo.MetaPathOf("targets", s.Targets.Signed.Version)],
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pin(v int64, b []byte) *metadata.MetaFiles {
	d := digest.Of(b)
	return &metadata.MetaFiles{Version: v, Length: int64(len(b)), Hashes: metadata.Hashes{"sha256": d[:]}}
}

func sign[T repo.Signed](t testing.TB, m *metadata.Metadata[T], keys []repo.PrivateKey) {
	t.Helper()
	m.ClearSignatures()
	for _, k := range keys {
		if err := repo.SignMeta(m, k); err != nil {
			t.Fatal(err)
		}
	}
}

func bytesOf[T repo.Signed](t testing.TB, m *metadata.Metadata[T]) []byte {
	t.Helper()
	b, err := m.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
