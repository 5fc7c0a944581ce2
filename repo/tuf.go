package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/strictjson"
)

// Repository paths of the TUF metadata (consistent snapshots: only
// timestamp.json changes in place; root.json is a copy of the newest
// N.root.json for people and first installs).
const (
	TimestampPath = "timestamp.json"
	RootPath      = "root.json"
)

// RootPathOf is where root version n lives.
func RootPathOf(n int64) string { return fmt.Sprintf("%d.root.json", n) }

// MetaPathOf is where version n of a consistent-snapshot role lives.
func MetaPathOf(role string, n int64) string { return fmt.Sprintf("%d.%s.json", n, role) }

// MaxMetaSize caps a metadata file whose length no signed metadata states
// (roots and the timestamp).
const MaxMetaSize = 1 << 20

// MaxRootRotations bounds the root versions a client walks in one update.
const MaxRootRotations = 256

// Bundle is the metadata a slot was accepted with, kept with the slot so
// that the security service checks it again with its own trusted root:
// the chain of roots from the first one the client trusted, and the
// timestamp, snapshot and targets. Each is the exact bytes as published
// (base64 in JSON), since the snapshot and timestamp pin them by hash.
type Bundle struct {
	Roots     [][]byte `json:"roots"`
	Timestamp []byte   `json:"timestamp"`
	Snapshot  []byte   `json:"snapshot"`
	Targets   []byte   `json:"targets"`
}

// Seen is a client's trusted timestamp and snapshot, kept per channel: the
// next update starts from them, so versions never go back (TUF 5.4, 5.5).
type Seen struct {
	Timestamp []byte `json:"timestamp,omitempty"`
	Snapshot  []byte `json:"snapshot,omitempty"`
}

// Trust is what a client trusts before it asks a repository anything.
type Trust struct {
	// Root is the trusted root metadata: the newest the client accepted,
	// or the one shipped in its slot (/etc/upgrade/root.json).
	Root []byte
	// Legacy are the keys of the format before TUF. A client with no root
	// adopts, once, the first root of the chain when one of these keys
	// signed it (the migration: docs/repository-format.md).
	Legacy Keyring
}

// Verifier runs TUF's client workflow (5.3-5.6) over go-tuf's trusted
// metadata state machine, one file at a time, so that the engine can fetch
// each from the mirrors between steps and the security service can replay
// a slot's bundle.
type Verifier struct {
	ctx    context.Context
	tm     *trustedmetadata.TrustedMetadata
	exp    Expect
	seen   Seen
	roots  [][]byte // the chain, from the first trusted root
	ts     []byte   // the trusted timestamp's bytes (the seen one when equal)
	snap   []byte
	target []byte
}

// MaxMetaSignatures caps the signatures one metadata file may carry, as
// MaxSignatures does for the index of the format before TUF: key ids are
// public, so a mirror could pad a file with signatures that each cost a
// search and a decode. A root signed by the keys of two roots during a
// rotation needs the most; 64 leaves room for 32 root keys.
const MaxMetaSignatures = 64

// checkSignatures refuses role's metadata b when it carries more than
// MaxMetaSignatures signatures, before go-tuf parses or checks any.
func checkSignatures(role string, b []byte) error {
	var env struct {
		Signatures []json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %v: %w", role, err, errdefs.ErrBadSignature)
	}
	if n := len(env.Signatures); n > MaxMetaSignatures {
		return fmt.Errorf("%s carries %d signatures, more than %d: %w", role, n, MaxMetaSignatures, errdefs.ErrBadSignature)
	}
	return nil
}

// NewVerifier starts from tr. first is the chain's first root when the
// client has none of its own (nil otherwise).
func NewVerifier(ctx context.Context, tr Trust, exp Expect, first []byte) (*Verifier, error) {
	root := tr.Root
	if root == nil {
		if first == nil {
			return nil, fmt.Errorf("no trusted root: %w", errdefs.ErrFailedPrecondition)
		}
		if err := adoptable(first, tr.Legacy); err != nil {
			return nil, err
		}
		root = first
	}
	tm, err := trustedmetadata.New(root)
	if err != nil {
		return nil, tufErr("trusted root", err)
	}
	tm.RefTime = exp.Now.UTC() // zero: nothing expires (a slot already installed)
	v := &Verifier{ctx: ctx, tm: tm, exp: exp, roots: [][]byte{root}}
	if exp.Seen != nil {
		v.seen = *exp.Seen
	}
	return v, nil
}

// adoptable reports whether root b may become a client's first root on
// the word of its legacy keys: b is a valid root (its own threshold signed
// it) and one of the legacy keys signed it too.
func adoptable(b []byte, legacy Keyring) error {
	if len(legacy) == 0 {
		return fmt.Errorf("no trusted root and no keys to adopt one: %w", errdefs.ErrFailedPrecondition)
	}
	if err := checkSignatures("root", b); err != nil {
		return err
	}
	r, err := metadata.Root().FromBytes(b)
	if err != nil {
		return tufErr("root", err)
	}
	if err := r.VerifyDelegate(metadata.ROOT, r); err != nil {
		return tufErr("root", err)
	}
	// The legacy keys as a one-role root: go-tuf then checks that one of
	// them signed b, by the specification's rules.
	lr := metadata.Root()
	lr.Signed.Roles = map[string]*metadata.Role{metadata.ROOT: {Threshold: 1}}
	for _, k := range legacy {
		mk, id, err := TUFKey(k)
		if err != nil {
			return err
		}
		lr.Signed.Keys[id] = mk
		lr.Signed.Roles[metadata.ROOT].KeyIDs = append(lr.Signed.Roles[metadata.ROOT].KeyIDs, id)
	}
	if err := lr.VerifyDelegate(metadata.ROOT, r); err != nil {
		return fmt.Errorf("root %d is not signed by a trusted key of the old format: %w", r.Signed.Version, errdefs.ErrBadSignature)
	}
	return nil
}

// RootVersion is the version of the trusted root.
func (v *Verifier) RootVersion() int64 { return v.tm.Root.Signed.Version }

// Root returns the trusted root's bytes.
func (v *Verifier) Root() []byte { return v.roots[len(v.roots)-1] }

// UpdateRoot takes the next root of the chain: it must be the trusted
// version + 1 and signed by the thresholds of both roots (TUF 5.3.4).
func (v *Verifier) UpdateRoot(b []byte) error {
	if err := v.ctx.Err(); err != nil {
		return err
	}
	if err := checkSignatures(fmt.Sprintf("root %d", v.RootVersion()+1), b); err != nil {
		return err
	}
	if _, err := v.tm.UpdateRoot(b); err != nil {
		return tufErr(fmt.Sprintf("root %d", v.RootVersion()+1), err)
	}
	v.roots = append(v.roots, b)
	return nil
}

// UpdateTimestamp checks b after the seen timestamp: a lower version is a
// rollback; the same version keeps the seen one (TUF 5.4.3).
func (v *Verifier) UpdateTimestamp(b []byte) error {
	if err := v.ctx.Err(); err != nil {
		return err
	}
	if err := checkSignatures("timestamp", b); err != nil {
		return err
	}
	if v.seen.Timestamp != nil {
		// Not trusted any more after a rotation of the timestamp keys (or
		// expired): then it cannot hold anything back (TUF 5.3.11).
		if _, err := v.tm.UpdateTimestamp(v.seen.Timestamp); err == nil || isExpired(err) {
			v.ts = v.seen.Timestamp
		}
	}
	_, err := v.tm.UpdateTimestamp(b)
	var eq *metadata.ErrEqualVersionNumber
	switch {
	case errors.As(err, &eq):
		if !bytes.Equal(b, v.ts) {
			return fmt.Errorf("timestamp version %d differs from the one seen before with that version: %w", v.tm.Timestamp.Signed.Version, errdefs.ErrBadSignature)
		}
		err = nil // the seen one stays; UpdateSnapshot checks its expiry
	case err == nil:
		v.ts = b
	}
	if err != nil {
		return tufErr("timestamp", err)
	}
	return nil
}

// SnapshotMeta is what the trusted timestamp says of the snapshot: its
// path and, when stated, its length and digest.
func (v *Verifier) SnapshotMeta() (string, int64, digest.Digest) {
	m := v.tm.Timestamp.Signed.Meta[metadata.SNAPSHOT+".json"]
	return metaFile(metadata.SNAPSHOT, m, v.tm.Root.Signed.ConsistentSnapshot)
}

// TargetsMeta is what the trusted snapshot says of the targets.
func (v *Verifier) TargetsMeta() (string, int64, digest.Digest) {
	m := v.tm.Snapshot.Signed.Meta[metadata.TARGETS+".json"]
	return metaFile(metadata.TARGETS, m, v.tm.Root.Signed.ConsistentSnapshot)
}

func metaFile(role string, m *metadata.MetaFiles, consistent bool) (string, int64, digest.Digest) {
	if m == nil {
		return role + ".json", 0, digest.Zero
	}
	var d digest.Digest
	if h := m.Hashes["sha256"]; len(h) == len(d) {
		copy(d[:], h)
	}
	if !consistent {
		return role + ".json", m.Length, d
	}
	return MetaPathOf(role, m.Version), m.Length, d
}

// UpdateSnapshot checks b against the timestamp and the seen snapshot (no
// targets version may go back, TUF 5.5.5).
func (v *Verifier) UpdateSnapshot(b []byte) error {
	if err := v.ctx.Err(); err != nil {
		return err
	}
	if err := checkSignatures("snapshot", b); err != nil {
		return err
	}
	if v.seen.Snapshot != nil {
		_, _ = v.tm.UpdateSnapshot(v.seen.Snapshot, true) // an intermediate: only its versions count
	}
	if _, err := v.tm.UpdateSnapshot(b, false); err != nil {
		return tufErr("snapshot", err)
	}
	v.snap = b
	return nil
}

// UpdateTargets checks b against the snapshot and the targets role.
func (v *Verifier) UpdateTargets(b []byte) error {
	if err := v.ctx.Err(); err != nil {
		return err
	}
	if err := checkSignatures("targets", b); err != nil {
		return err
	}
	if _, err := v.tm.UpdateTargets(b); err != nil {
		return tufErr("targets", err)
	}
	v.target = b
	return nil
}

// Index is the verified targets as the client's view, after the channel
// and hardware checks of exp. Its Serial is the timestamp's version, its
// Expires the earliest of the timestamp's, snapshot's and targets'.
func (v *Verifier) Index() (*Index, error) {
	t := v.tm.Targets[metadata.TARGETS]
	if t == nil {
		return nil, fmt.Errorf("no targets: %w", errdefs.ErrFailedPrecondition)
	}
	x, err := indexOf(&t.Signed)
	if err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	x.Type, x.Spec = "index", IndexSpec
	x.Serial = uint64(v.tm.Timestamp.Signed.Version)
	x.Timestamp = time.Time{}
	for _, e := range []time.Time{v.tm.Timestamp.Signed.Expires, v.tm.Snapshot.Signed.Expires} {
		if e.Before(x.Expires) {
			x.Expires = e
		}
	}
	if err := checkExpect(x, v.exp); err != nil {
		return nil, err
	}
	return x, nil
}

// checkExpect applies the channel and hardware a client follows. An empty
// repository names no channel and is refused by nothing: it offers nothing.
func checkExpect(x *Index, exp Expect) error {
	if exp.Channel != "" && len(x.Versions) > 0 && x.Channel != exp.Channel {
		return fmt.Errorf("repository is for channel %q, this machine follows %q: %w", x.Channel, exp.Channel, errdefs.ErrPolicy)
	}
	if exp.Hardware != "" && x.Hardware != "" && x.Hardware != exp.Hardware {
		return fmt.Errorf("repository is for hardware %q, this machine is %q: %w", x.Hardware, exp.Hardware, errdefs.ErrPolicy)
	}
	return nil
}

// Bundle returns what was verified, to keep with a slot.
func (v *Verifier) Bundle() Bundle {
	return Bundle{Roots: v.roots, Timestamp: v.ts, Snapshot: v.snap, Targets: v.target}
}

// Seen returns the state to keep for the next update.
func (v *Verifier) Seen() Seen { return Seen{Timestamp: v.ts, Snapshot: v.snap} }

// MarshalBundle encodes a bundle.
func MarshalBundle(b Bundle) ([]byte, error) { return json.Marshal(b) }

// ParseBundle decodes a bundle strictly.
func ParseBundle(raw []byte) (Bundle, error) {
	var b Bundle
	if len(raw) > 4*MaxIndexSize {
		return b, fmt.Errorf("bundle of %d bytes: %w", len(raw), errdefs.ErrTooLarge)
	}
	if err := strictjson.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("metadata bundle: %v: %w", err, errdefs.ErrBadSignature)
	}
	return b, nil
}

// OpenBundle replays a bundle from tr: the roots newer than the trusted
// one (consecutive: a gap is refused), then timestamp, snapshot, targets.
func OpenBundle(ctx context.Context, raw []byte, tr Trust, exp Expect) (*Verifier, *Index, error) {
	b, err := ParseBundle(raw)
	if err != nil {
		return nil, nil, err
	}
	var first []byte
	if len(b.Roots) > 0 {
		first = b.Roots[0]
	}
	v, err := NewVerifier(ctx, tr, exp, first)
	if err != nil {
		return nil, nil, err
	}
	if err := v.walk(b.Roots); err != nil {
		return nil, nil, err
	}
	if err := v.UpdateTimestamp(b.Timestamp); err != nil {
		return nil, nil, err
	}
	if err := v.UpdateSnapshot(b.Snapshot); err != nil {
		return nil, nil, err
	}
	if err := v.UpdateTargets(b.Targets); err != nil {
		return nil, nil, err
	}
	x, err := v.Index()
	if err != nil {
		return nil, nil, err
	}
	return v, x, nil
}

// walk applies the roots of a chain newer than the trusted one.
func (v *Verifier) walk(roots [][]byte) error {
	for _, r := range roots {
		n, err := rootVersion(r)
		if err != nil {
			return err
		}
		if n <= v.RootVersion() {
			continue
		}
		if n != v.RootVersion()+1 {
			return fmt.Errorf("root chain jumps from version %d to %d: %w", v.RootVersion(), n, errdefs.ErrBadSignature)
		}
		if err := v.UpdateRoot(r); err != nil {
			return err
		}
	}
	return nil
}

// OpenTargets checks only a bundle's targets against the trusted root
// (walked up the bundle's chain): what a slot already installed needs to
// be verified, with no freshness. A rotation of the timestamp or snapshot
// keys does not make an installed slot unverifiable; a revoked targets key
// does.
//
// When the whole bundle verifies (expiry aside), its timestamp and
// snapshot count as seen, as they did when the slot was accepted.
func OpenTargets(ctx context.Context, raw []byte, tr Trust) (*Verifier, *Index, error) {
	if v, x, err := OpenBundle(ctx, raw, tr, Expect{}); err == nil {
		return v, x, nil
	}
	b, err := ParseBundle(raw)
	if err != nil {
		return nil, nil, err
	}
	var first []byte
	if len(b.Roots) > 0 {
		first = b.Roots[0]
	}
	v, err := NewVerifier(ctx, tr, Expect{}, first)
	if err != nil {
		return nil, nil, err
	}
	if err := v.walk(b.Roots); err != nil {
		return nil, nil, err
	}
	t, err := parseTargets(b.Targets)
	if err != nil {
		return nil, nil, err
	}
	if err := v.tm.Root.VerifyDelegate(metadata.TARGETS, t); err != nil {
		return nil, nil, tufErr("targets", err)
	}
	x, err := indexOf(&t.Signed)
	if err != nil {
		return nil, nil, fmt.Errorf("targets: %w", err)
	}
	v.target = b.Targets
	return v, x, nil
}

// RootVersionOf reads the version of root metadata (unverified).
func RootVersionOf(b []byte) (int64, error) { return rootVersion(b) }

// MetaVersionOf reads the version of any metadata (unverified; 0 when
// unreadable): for comparing records already verified.
func MetaVersionOf(b []byte) int64 {
	n, _ := rootVersion(b)
	return n
}

// TimestampVersion is the trusted timestamp's version (0: none).
func (v *Verifier) TimestampVersion() uint64 {
	if v.tm.Timestamp == nil {
		return 0
	}
	return uint64(v.tm.Timestamp.Signed.Version)
}

// CheckTimestamp refuses an expired trusted timestamp (UpdateTimestamp
// keeps a seen one of equal version without checking it).
func (v *Verifier) CheckTimestamp() error {
	if v.tm.Timestamp != nil && !v.tm.RefTime.IsZero() && v.tm.Timestamp.Signed.IsExpired(v.tm.RefTime) {
		return fmt.Errorf("timestamp version %d expired at %s: %w", v.tm.Timestamp.Signed.Version, v.tm.Timestamp.Signed.Expires.UTC().Format(time.RFC3339), errdefs.ErrBadSignature)
	}
	return nil
}

func rootVersion(b []byte) (int64, error) {
	var r struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("root: %v: %w", err, errdefs.ErrBadSignature)
	}
	return r.Signed.Version, nil
}

func isExpired(err error) bool {
	var e *metadata.ErrExpiredMetadata
	return errors.As(err, &e)
}

// tufErr classifies go-tuf's errors: every refusal of metadata is
// BadSignature (forged, expired, rolled back, unsigned), as the daemon
// reports it.
func tufErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isExpired(err) {
		return fmt.Errorf("%s expired: %v: %w", what, err, errdefs.ErrBadSignature)
	}
	return fmt.Errorf("%s: %v: %w", what, err, errdefs.ErrBadSignature)
}

func parseTargets(b []byte) (*metadata.Metadata[metadata.TargetsType], error) {
	t, err := metadata.Targets().FromBytes(b)
	if err != nil {
		return nil, tufErr("targets", err)
	}
	if t.Signed.Type != metadata.TARGETS {
		return nil, fmt.Errorf("targets: type %q: %w", t.Signed.Type, errdefs.ErrBadSignature)
	}
	return t, nil
}
