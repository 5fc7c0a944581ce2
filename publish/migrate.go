package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/repo"
)

// LegacyTTL is the validity of the signed index of the format before TUF,
// as its clients expect it (they refuse it once expired).
const LegacyTTL = 30 * 24 * time.Hour

// migrateLegacy moves a repository of the format before TUF to TUF
// metadata in one signed step (issue 16): every version of its index.json,
// checked with o.Key, goes into the first targets, which meta (new, with
// no targets yet) then releases. x is that index (readLegacy).
func migrateLegacy(meta *Meta, o Options, x *repo.Index, now time.Time) error {
	for i := range x.Versions {
		v := &x.Versions[i]
		ts, err := repo.VersionTargets(x.Channel, x.Hardware, v)
		if err != nil {
			return err
		}
		for name, tf := range ts {
			if err := linkTarget(o.Repo, name, pinOf(v, name)); err != nil {
				return fmt.Errorf("migrating version %d: %w", v.Version, err)
			}
			meta.Targets.Signed.Targets[name] = tf
		}
	}
	meta.Targets.Signed.Version++
	meta.Targets.Signed.Expires = now.Add(DefaultTargetsTTL)
	if err := signRole(meta.Root, "targets", meta.Targets, o.signers()); err != nil {
		return err
	}
	if err := meta.Release(o.signers(), true, now, o.TTL); err != nil {
		return err
	}
	o.Logf("migrated %s: %d versions of channel %q into TUF targets version %d", repo.IndexPath, len(x.Versions), x.Channel, meta.Targets.Signed.Version)
	return nil
}

// readLegacy returns the repository's index.json verified with o.Key (its
// expiry aside: the publisher trusts its own directory), or nil when
// there is none.
func readLegacy(o Options) (*repo.Index, error) {
	b, err := os.ReadFile(filepath.Join(o.Repo, repo.IndexPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pub := o.Key.Public()
	x, err := repo.OpenLegacyIndex(context.Background(), b, repo.Keyring{pub.ID: pub}, repo.Expect{Channel: o.Channel}, nil)
	if err != nil {
		return nil, fmt.Errorf("existing %s: %w", repo.IndexPath, err)
	}
	return x, nil
}

// writeLegacy rewrites index.json, when the repository has one, with the
// versions of the TUF targets, signed by o.Key: laptops whose software
// predates TUF read only that file, and must still be able to install the
// release that brings TUF. Deleting index.json ends this.
func writeLegacy(meta *Meta, o Options, now time.Time) error {
	old, err := readLegacy(o)
	if err != nil || old == nil {
		return err
	}
	x, err := meta.Index()
	if err != nil {
		return err
	}
	x.Type, x.Spec = "index", repo.IndexSpec
	if len(x.Versions) == 0 {
		x.Channel, x.Hardware = old.Channel, old.Hardware
	}
	x.Serial = old.Serial + 1
	x.Timestamp, x.Expires = now, now.Add(max(LegacyTTL, o.TTL))
	b, err := repo.SignLegacyIndex(x, o.Key)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(o.Repo, repo.IndexPath), b, 0644)
}
