package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/repo"
)

// The root ceremony (issue 16): the root keys stay offline, so a new root
// is a draft file that travels to each key holder's machine to be signed
// (SignDraft), then comes back to be published (PublishRoot), which checks
// the thresholds of the old and the new root as clients will.

// RootChange is what a new root changes: keys added to or revoked from
// roles (role name -> keys), and thresholds.
type RootChange struct {
	Add, Revoke map[string][]repo.PublicKey
	Threshold   map[string]int
	TTL         time.Duration // validity of the new root (default DefaultRootTTL)
}

// Roles are TUF's four top-level roles.
var Roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// DraftRoot writes to draft the next root of the repository at dir, with
// c applied and no signature: version 1 when dir has no root yet.
func DraftRoot(dir, draft string, c RootChange, now time.Time) (*metadata.Metadata[metadata.RootType], error) {
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultRootTTL
	}
	r, err := metadata.Root().FromFile(filepath.Join(dir, repo.RootPath))
	switch {
	case errors.Is(err, os.ErrNotExist):
		r = metadata.Root(now.Add(ttl))
		r.Signed.ConsistentSnapshot = true
	case err != nil:
		return nil, fmt.Errorf("%s: %w", repo.RootPath, err)
	default:
		r.Signed.Version++
		r.Signed.Expires = now.Add(ttl)
	}
	r.ClearSignatures()
	for role, keys := range c.Revoke {
		for _, k := range keys {
			_, id, err := repo.TUFKey(k)
			if err != nil {
				return nil, err
			}
			if err := r.Signed.RevokeKey(id, role); err != nil {
				return nil, fmt.Errorf("revoke key %s from %s: %v: %w", k.ID, role, err, errdefs.ErrInvalidArgument)
			}
		}
	}
	for role, keys := range c.Add {
		for _, k := range keys {
			mk, _, err := repo.TUFKey(k)
			if err != nil {
				return nil, err
			}
			if err := r.Signed.AddKey(mk, role); err != nil {
				return nil, fmt.Errorf("add key %s to %s: %v: %w", k.ID, role, err, errdefs.ErrInvalidArgument)
			}
		}
	}
	for role, n := range c.Threshold {
		if r.Signed.Roles[role] == nil || n < 1 {
			return nil, fmt.Errorf("threshold %d for role %q: %w", n, role, errdefs.ErrInvalidArgument)
		}
		r.Signed.Roles[role].Threshold = n
	}
	for _, role := range Roles {
		if n := len(r.Signed.Roles[role].KeyIDs); n < r.Signed.Roles[role].Threshold {
			return nil, fmt.Errorf("role %s would have %d keys for a threshold of %d: %w", role, n, r.Signed.Roles[role].Threshold, errdefs.ErrInvalidArgument)
		}
	}
	b, err := r.ToBytes(true)
	if err != nil {
		return nil, err
	}
	return r, atomicfile.Write(draft, b, 0644)
}

// SignDraft adds k's signature to a draft, root or targets (on the
// machine that holds k). Whether k counts is for PublishRoot or
// PublishTargets to check, as clients will.
func SignDraft(draft string, k repo.PrivateKey) error {
	raw, err := os.ReadFile(draft)
	if err != nil {
		return err
	}
	var head struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("draft %s: %v: %w", draft, err, errdefs.ErrInvalidArgument)
	}
	var b []byte
	switch head.Signed.Type {
	case metadata.ROOT:
		b, err = signBytes(metadata.Root(), raw, k)
	case metadata.TARGETS:
		b, err = signBytes(metadata.Targets(), raw, k)
	default:
		return fmt.Errorf("draft %s is %q metadata, not root or targets: %w", draft, head.Signed.Type, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("draft %s: %w", draft, err)
	}
	return atomicfile.Write(draft, b, 0644)
}

func signBytes[T repo.Signed](m *metadata.Metadata[T], raw []byte, k repo.PrivateKey) ([]byte, error) {
	m, err := m.FromBytes(raw)
	if err != nil {
		return nil, err
	}
	if err := repo.SignMeta(m, k); err != nil {
		return nil, err
	}
	return m.ToBytes(true)
}

// PublishTargets releases targets drafted by Add (Options.TargetsDraft)
// and signed offline: they must follow the repository's current targets
// and meet the targets role's threshold. o's keys sign the snapshot and
// timestamp.
func PublishTargets(o Options, draft string) error {
	o.defaults()
	meta, err := LoadMeta(o.Repo)
	if err != nil {
		return err
	}
	t, err := metadata.Targets().FromFile(draft)
	if err != nil {
		return fmt.Errorf("draft %s: %w", draft, err)
	}
	if t.Signed.Version != meta.Targets.Signed.Version+1 {
		return fmt.Errorf("draft is targets %d, the repository's are %d: %w", t.Signed.Version, meta.Targets.Signed.Version, errdefs.ErrFailedPrecondition)
	}
	if err := meta.Root.VerifyDelegate(metadata.TARGETS, t); err != nil {
		return fmt.Errorf("targets %d: %v: %w", t.Signed.Version, err, errdefs.ErrFailedPrecondition)
	}
	b, err := t.ToBytes(false)
	if err != nil {
		return err
	}
	if _, err := repo.IndexOfTargets(b); err != nil {
		return err
	}
	meta.Targets = t
	now := o.Now().UTC().Truncate(time.Second)
	if err := meta.Release(o.signers(), true, now, o.TTL); err != nil {
		return err
	}
	return writeLegacy(meta, o, now)
}

// PublishRoot writes the signed draft into the repository at dir as its
// newest root, after the checks a client makes: the version follows the
// current root's, and the thresholds of both the current root and the
// draft signed it (TUF 5.3.4).
func PublishRoot(dir, draft string) (*metadata.Metadata[metadata.RootType], error) {
	r, err := metadata.Root().FromFile(draft)
	if err != nil {
		return nil, fmt.Errorf("draft %s: %w", draft, err)
	}
	m := &Meta{Dir: dir, Root: r}
	prev, err := metadata.Root().FromFile(filepath.Join(dir, repo.RootPath))
	switch {
	case errors.Is(err, os.ErrNotExist):
		prev = nil
		if r.Signed.Version != 1 {
			return nil, fmt.Errorf("%s has no root; the first must be version 1, not %d: %w", dir, r.Signed.Version, errdefs.ErrFailedPrecondition)
		}
		if err := os.MkdirAll(dir, 0755); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case r.Signed.Version != prev.Signed.Version+1:
		return nil, fmt.Errorf("draft is root %d, the repository's is %d: %w", r.Signed.Version, prev.Signed.Version, errdefs.ErrFailedPrecondition)
	}
	if err := m.WriteRoot(prev); err != nil {
		return nil, err
	}
	return r, nil
}
