package repo

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/strictjson"
)

// IndexSpec is the index format version.
const IndexSpec = 1

// MaxIndexSize caps the only download whose size no signature states.
const MaxIndexSize = 8 << 20

// MaxSignatures caps the signatures an index may carry. Key ids are public,
// so without a cap an index of one message and thousands of bogus
// signatures naming a trusted key costs minutes of CPU to refuse.
const MaxSignatures = 16

// BlobRef pins a blob: the digest and size of its content, and of the bytes
// as stored in the repository (zstd-compressed).
type BlobRef struct {
	SHA256     digest.Digest `json:"sha256"`
	Size       int64         `json:"size"`
	Stored     digest.Digest `json:"stored_sha256"`
	StoredSize int64         `json:"stored_size"`
}

// VersionRef is one published version in the index.
type VersionRef struct {
	Version  layout.Version `json:"version"`
	Name     string         `json:"name,omitempty"`
	Notes    string         `json:"notes,omitempty"` // release notes, plain text (upgrade-publish add --notes)
	Created  time.Time      `json:"created"`
	Manifest BlobRef        `json:"manifest"` // pins the manifest (mix-and-match defence)
	Delivery BlobRef        `json:"delivery"` // pins the delivery list: objects, deltas, packs
	Entries  int            `json:"entries"`  // manifest entries, so a client can refuse before fetching
}

// Index is a repository channel's versions as a client sees them: made
// from verified TUF targets (Verifier.Index), or from a signed index of
// the format before TUF (OpenLegacyIndex).
type Index struct {
	Type      string       `json:"type"` // "index"
	Spec      int          `json:"spec"`
	Channel   string       `json:"channel"`
	Hardware  string       `json:"hardware,omitempty"`
	Serial    uint64       `json:"serial"` // grows with every publish
	Timestamp time.Time    `json:"timestamp"`
	Expires   time.Time    `json:"expires"`
	Versions  []VersionRef `json:"versions"` // ascending by Version
}

// Latest returns the newest version, or nil.
func (x *Index) Latest() *VersionRef {
	if len(x.Versions) == 0 {
		return nil
	}
	return &x.Versions[len(x.Versions)-1]
}

// Find returns version v, or nil.
func (x *Index) Find(v layout.Version) *VersionRef {
	for i := range x.Versions {
		if x.Versions[i].Version == v {
			return &x.Versions[i]
		}
	}
	return nil
}

// Envelope carries the exact signed bytes and their signatures, so no
// canonical JSON is needed: what was signed is what is parsed.
type Envelope struct {
	Signed     []byte      `json:"signed"` // base64 in JSON
	Signatures []Signature `json:"signatures"`
}

// Signature is one Ed25519 signature over Envelope.Signed.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"`
}

// SignLegacyIndex encodes and signs an index of the format before TUF
// with every key given (the last one, at the migration).
func SignLegacyIndex(x *Index, keys ...PrivateKey) ([]byte, error) {
	x.Type, x.Spec = "index", IndexSpec
	body, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	env := Envelope{Signed: body}
	for _, k := range keys {
		env.Signatures = append(env.Signatures, Signature{KeyID: k.ID, Sig: ed25519.Sign(k.Key, body)})
	}
	out, err := json.MarshalIndent(env, "", " ")
	return append(out, '\n'), err
}

// Expect is what the client requires of an index besides a good signature.
type Expect struct {
	Channel  string    // "" accepts any channel (the security service: the daemon picks channels)
	Hardware string    // "" accepts an index for any hardware
	Now      time.Time // expiry reference
	// Seen is the trusted timestamp and snapshot of the last update (nil
	// on first use).
	Seen *Seen
}

// SeenIndex remembers the last accepted index of the format before TUF:
// an index with a lower serial is a rollback or a replay; the same serial
// with other bytes is a fork.
type SeenIndex struct {
	Serial uint64        `json:"serial"`
	SHA256 digest.Digest `json:"sha256"`
}

// OpenLegacyIndex verifies and parses a signed index of the format before
// TUF (spec 1), which laptops not yet migrated still read. Order matters:
// the signature is checked over the raw bytes before any field is trusted.
// Cancelling ctx stops the signature checks.
func OpenLegacyIndex(ctx context.Context, b []byte, kr Keyring, exp Expect, seen *SeenIndex) (*Index, error) {
	if len(b) > MaxIndexSize {
		return nil, fmt.Errorf("index of %d bytes: %w", len(b), errdefs.ErrTooLarge)
	}
	var env Envelope
	if err := strictjson.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("index envelope: %v: %w", err, errdefs.ErrBadSignature)
	}
	if n := len(env.Signatures); n > MaxSignatures {
		return nil, fmt.Errorf("index carries %d signatures, more than %d: %w", n, MaxSignatures, errdefs.ErrBadSignature)
	}
	ok, err := verifyAny(ctx, env, kr)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("index: no valid signature by a trusted key (%d signatures): %w", len(env.Signatures), errdefs.ErrBadSignature)
	}
	var x Index
	if err := strictjson.Unmarshal(env.Signed, &x); err != nil {
		return nil, fmt.Errorf("index: %v: %w", err, errdefs.ErrBadSignature)
	}
	if x.Type != "index" || x.Spec != IndexSpec {
		return nil, fmt.Errorf("index: type %q spec %d: %w", x.Type, x.Spec, errdefs.ErrBadSignature)
	}
	if exp.Channel != "" && x.Channel != exp.Channel {
		return nil, fmt.Errorf("index is for channel %q, this machine follows %q: %w", x.Channel, exp.Channel, errdefs.ErrPolicy)
	}
	if exp.Hardware != "" && x.Hardware != "" && x.Hardware != exp.Hardware {
		return nil, fmt.Errorf("index is for hardware %q, this machine is %q: %w", x.Hardware, exp.Hardware, errdefs.ErrPolicy)
	}
	if !exp.Now.IsZero() && !exp.Now.Before(x.Expires) {
		return nil, fmt.Errorf("index expired at %s (serial %d): %w", x.Expires.UTC().Format(time.RFC3339), x.Serial, errdefs.ErrBadSignature)
	}
	if s := seen; s != nil {
		switch {
		case x.Serial < s.Serial:
			return nil, fmt.Errorf("index serial %d is older than serial %d seen before (rollback or replay): %w", x.Serial, s.Serial, errdefs.ErrBadSignature)
		case x.Serial == s.Serial && digest.Of(env.Signed) != s.SHA256:
			return nil, fmt.Errorf("index serial %d differs from the one seen before with that serial: %w", x.Serial, errdefs.ErrBadSignature)
		}
	}
	for i := range x.Versions {
		v := &x.Versions[i]
		if i > 0 && v.Version <= x.Versions[i-1].Version {
			return nil, fmt.Errorf("index: versions not strictly ascending at %d: %w", v.Version, errdefs.ErrBadSignature)
		}
		if err := v.Manifest.check(); err != nil {
			return nil, fmt.Errorf("index version %d manifest: %w", v.Version, err)
		}
		if err := v.Delivery.check(); err != nil {
			return nil, fmt.Errorf("index version %d delivery: %w", v.Version, err)
		}
	}
	return &x, nil
}

// Seen returns the record to store after accepting the index in b.
func SeenOf(b []byte, x *Index) (SeenIndex, error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return SeenIndex{}, err
	}
	return SeenIndex{Serial: x.Serial, SHA256: digest.Of(env.Signed)}, nil
}

// verifySig is ed25519.Verify; tests count its calls.
var verifySig = ed25519.Verify

// verifyAny checks each trusted key at most once: a second signature naming
// a key already tried is skipped, so the work is bounded by the keyring.
func verifyAny(ctx context.Context, env Envelope, kr Keyring) (bool, error) {
	tried := make(map[string]bool, len(kr))
	for _, s := range env.Signatures {
		k, ok := kr[s.KeyID]
		if !ok || tried[s.KeyID] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		tried[s.KeyID] = true
		if verifySig(k.Key, env.Signed, s.Sig) {
			return true, nil
		}
	}
	return false, nil
}

// MaxBlob bounds any single blob size in signed metadata (sanity, not policy).
const MaxBlob = 1 << 40

func (r BlobRef) check() error {
	if r.Size < 0 || r.Size > MaxBlob || r.StoredSize <= 0 || r.StoredSize > MaxBlob {
		return fmt.Errorf("sizes %d/%d out of range: %w", r.Size, r.StoredSize, errdefs.ErrInvalidArgument)
	}
	return nil
}
