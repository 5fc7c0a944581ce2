package publish

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/repo"
)

// Default validity of each role's metadata. The timestamp is short: a
// mirror replaying old metadata can freeze a laptop only until then. The
// targets and root roles sign offline and seldom.
const (
	DefaultTimestampTTL = 24 * time.Hour
	DefaultSnapshotTTL  = 7 * 24 * time.Hour
	DefaultTargetsTTL   = 365 * 24 * time.Hour
	DefaultRootTTL      = 365 * 24 * time.Hour
)

// Meta is a repository's TUF metadata as the publisher edits it: the
// newest root and the current timestamp, snapshot and targets.
type Meta struct {
	Dir       string
	Root      *metadata.Metadata[metadata.RootType]
	Timestamp *metadata.Metadata[metadata.TimestampType]
	Snapshot  *metadata.Metadata[metadata.SnapshotType]
	Targets   *metadata.Metadata[metadata.TargetsType]
}

// ErrNoRepository: the directory holds no TUF metadata yet.
var ErrNoRepository = fmt.Errorf("no TUF metadata (root.json): %w", errdefs.ErrNotFound)

// LoadMeta reads a repository's metadata. The publisher trusts its own
// directory; clients and export verify it (repo.OpenDir).
func LoadMeta(dir string) (*Meta, error) {
	m := &Meta{Dir: dir}
	var err error
	if m.Root, err = metadata.Root().FromFile(filepath.Join(dir, repo.RootPath)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoRepository
		}
		return nil, fmt.Errorf("%s: %w", repo.RootPath, err)
	}
	if m.Timestamp, err = metadata.Timestamp().FromFile(filepath.Join(dir, repo.TimestampPath)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// A root from the ceremony (PublishRoot), nothing released yet.
			m.emptyRoles(time.Now())
			return m, nil
		}
		return nil, fmt.Errorf("%s: %w", repo.TimestampPath, err)
	}
	sv := m.Timestamp.Signed.Meta[metadata.SNAPSHOT+".json"].Version
	if m.Snapshot, err = metadata.Snapshot().FromFile(filepath.Join(dir, repo.MetaPathOf(metadata.SNAPSHOT, sv))); err != nil {
		return nil, err
	}
	tv := m.Snapshot.Signed.Meta[metadata.TARGETS+".json"].Version
	if m.Targets, err = metadata.Targets().FromFile(filepath.Join(dir, repo.MetaPathOf(metadata.TARGETS, tv))); err != nil {
		return nil, err
	}
	return m, nil
}

// NewMeta starts a repository: version 1 of every role, roles naming the
// keys given (the same key may serve several roles), empty targets. Nothing
// is signed or written yet.
func NewMeta(dir string, roles map[string][]repo.PublicKey, thresholds map[string]int, now time.Time) (*Meta, error) {
	m := &Meta{Dir: dir, Root: metadata.Root(now.Add(DefaultRootTTL))}
	m.Root.Signed.ConsistentSnapshot = true
	m.emptyRoles(now)
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if len(roles[role]) == 0 {
			return nil, fmt.Errorf("role %s has no key: %w", role, errdefs.ErrInvalidArgument)
		}
		for _, k := range roles[role] {
			mk, _, err := repo.TUFKey(k)
			if err != nil {
				return nil, err
			}
			if err := m.Root.Signed.AddKey(mk, role); err != nil {
				return nil, err
			}
		}
		if t := thresholds[role]; t > 0 {
			m.Root.Signed.Roles[role].Threshold = t
		}
	}
	return m, nil
}

// emptyRoles starts the timestamp, snapshot and targets at version 0:
// the first release makes version 1 of each.
func (m *Meta) emptyRoles(now time.Time) {
	m.Timestamp = metadata.Timestamp(now.Add(DefaultTimestampTTL))
	m.Snapshot = metadata.Snapshot(now.Add(DefaultSnapshotTTL))
	m.Targets = metadata.Targets(now.Add(DefaultTargetsTTL))
	m.Targets.Signed.Version, m.Snapshot.Signed.Version, m.Timestamp.Signed.Version = 0, 0, 0
	m.Snapshot.Signed.Meta = map[string]*metadata.MetaFiles{}
	m.Timestamp.Signed.Meta = map[string]*metadata.MetaFiles{}
}

// Index is the client's view of the current metadata (Serial: the
// timestamp's version).
func (m *Meta) Index() (*repo.Index, error) {
	b, err := m.Targets.ToBytes(false)
	if err != nil {
		return nil, err
	}
	x, err := repo.IndexOfTargets(b)
	if err != nil {
		return nil, err
	}
	x.Serial = uint64(m.Timestamp.Signed.Version)
	for _, e := range []time.Time{m.Timestamp.Signed.Expires, m.Snapshot.Signed.Expires} {
		if e.Before(x.Expires) {
			x.Expires = e
		}
	}
	return x, nil
}

// signRole signs md with every key in keys that role lists, and checks
// that the role's threshold is met.
func signRole[T repo.Signed](root *metadata.Metadata[metadata.RootType], role string, md *metadata.Metadata[T], keys []repo.PrivateKey) error {
	md.ClearSignatures()
	for _, k := range keys {
		_, id, err := repo.TUFKey(k.Public())
		if err != nil {
			return err
		}
		if r := root.Signed.Roles[role]; r != nil && contains(r.KeyIDs, id) {
			if err := repo.SignMeta(md, k); err != nil {
				return err
			}
		}
	}
	if err := root.VerifyDelegate(role, md); err != nil {
		return fmt.Errorf("the %s role needs %d signatures by its keys; the keys given make %d (%v): %w",
			role, root.Signed.Roles[role].Threshold, len(md.Signatures), err, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// metaFileOf pins a metadata file: version, length and sha256.
func metaFileOf(version int64, b []byte) *metadata.MetaFiles {
	d := digest.Of(b)
	return &metadata.MetaFiles{Version: version, Length: int64(len(b)), Hashes: metadata.Hashes{"sha256": d[:]}}
}

// Release signs and writes new snapshot and timestamp metadata over the
// current targets (written first when changed), timestamp.json last: a
// mirror syncing at any instant serves a consistent repository. writeTargets
// says the targets changed (a new version); otherwise only the online roles
// are refreshed (resign).
func (m *Meta) Release(keys []repo.PrivateKey, writeTargets bool, now time.Time, ttl time.Duration) error {
	if m.Targets.Signed.Version == 0 {
		return fmt.Errorf("%s: nothing published yet: %w", m.Dir, errdefs.ErrFailedPrecondition)
	}
	if writeTargets {
		tb, err := m.Targets.ToBytes(true)
		if err != nil {
			return err
		}
		if err := writeNew(m.Dir, repo.MetaPathOf(metadata.TARGETS, m.Targets.Signed.Version), tb); err != nil {
			return err
		}
		m.Snapshot.Signed.Meta[metadata.TARGETS+".json"] = metaFileOf(m.Targets.Signed.Version, tb)
	}
	m.Snapshot.Signed.Version++
	m.Snapshot.Signed.Expires = now.Add(max(DefaultSnapshotTTL, ttl))
	if err := signRole(m.Root, metadata.SNAPSHOT, m.Snapshot, keys); err != nil {
		return err
	}
	sb, err := m.Snapshot.ToBytes(true)
	if err != nil {
		return err
	}
	if err := writeNew(m.Dir, repo.MetaPathOf(metadata.SNAPSHOT, m.Snapshot.Signed.Version), sb); err != nil {
		return err
	}
	m.Timestamp.Signed.Version++
	m.Timestamp.Signed.Expires = now.Add(ttl)
	m.Timestamp.Signed.Meta[metadata.SNAPSHOT+".json"] = metaFileOf(m.Snapshot.Signed.Version, sb)
	if err := signRole(m.Root, metadata.TIMESTAMP, m.Timestamp, keys); err != nil {
		return err
	}
	b, err := m.Timestamp.ToBytes(true)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(m.Dir, repo.TimestampPath), b, 0644)
}

// WriteRoot writes the root as N.root.json and root.json, after checking
// that it is signed well enough to be trusted: by its own threshold, and
// by the previous root's when there is one (TUF 5.3.4).
func (m *Meta) WriteRoot(prev *metadata.Metadata[metadata.RootType]) error {
	if prev != nil {
		if err := prev.VerifyDelegate(metadata.ROOT, m.Root); err != nil {
			return fmt.Errorf("root %d is not signed by the threshold of root %d: %v: %w", m.Root.Signed.Version, prev.Signed.Version, err, errdefs.ErrFailedPrecondition)
		}
	}
	if err := m.Root.VerifyDelegate(metadata.ROOT, m.Root); err != nil {
		return fmt.Errorf("root %d is not signed by its own threshold: %v: %w", m.Root.Signed.Version, err, errdefs.ErrFailedPrecondition)
	}
	b, err := m.Root.ToBytes(true)
	if err != nil {
		return err
	}
	if err := writeNew(m.Dir, repo.RootPathOf(m.Root.Signed.Version), b); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(m.Dir, repo.RootPath), b, 0644)
}

// writeNew writes an immutable metadata file (consistent snapshots: its
// name carries its version). An existing file with other bytes is refused:
// clients may have it cached.
func writeNew(dir, name string, b []byte) error {
	p := filepath.Join(dir, name)
	if old, err := os.ReadFile(p); err == nil {
		if string(old) == string(b) {
			return nil
		}
		return fmt.Errorf("%s exists with other content: %w", p, errdefs.ErrFailedPrecondition)
	}
	return atomicfile.Write(p, b, 0644)
}

// linkTarget makes the consistent-snapshot target file of name: the stored
// object itself, hard-linked (copied across filesystems). The link is made
// durable (its directory synced) before the caller signs metadata naming
// it, so a crash never leaves a timestamp that points at a lost file.
func linkTarget(dir, name string, ref repo.BlobRef) error {
	dst := filepath.Join(dir, filepath.FromSlash(repo.TargetFilePath(name, ref.Stored)))
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	src := filepath.Join(dir, filepath.FromSlash(repo.ObjectPath(ref.SHA256)))
	if err := os.MkdirAll(filepath.Dir(dst), 0755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return atomicfile.SyncDir(filepath.Dir(dst))
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.Write(dst, b, 0644)
}
