package repo

import (
	"crypto/ed25519"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"laptop.org/upgrade/errdefs"
)

// TUFKey returns k as TUF key metadata (ed25519, hex) and its TUF key id
// (SHA-256 of the key's canonical JSON), which differs from KeyID: the
// key files keep their short ids, the metadata uses the specification's.
func TUFKey(k PublicKey) (*metadata.Key, string, error) {
	mk, err := metadata.KeyFromPublicKey(k.Key)
	if err != nil {
		return nil, "", err
	}
	id, err := mk.ID()
	return mk, id, err
}

// Signed is any of the four top-level metadata types.
type Signed interface {
	metadata.RootType | metadata.TimestampType | metadata.SnapshotType | metadata.TargetsType
}

// SignedBytes is what a signature covers: the canonical JSON of the signed
// part (OLPC's canonical JSON, as TUF specifies).
func SignedBytes[T Signed](m *metadata.Metadata[T]) ([]byte, error) {
	return cjson.EncodeCanonical(m.Signed)
}

// SignMeta adds k's signature over m, replacing an earlier one by k.
func SignMeta[T Signed](m *metadata.Metadata[T], k PrivateKey) error {
	payload, err := SignedBytes(m)
	if err != nil {
		return err
	}
	return AddSignature(m, k.Public(), ed25519.Sign(k.Key, payload))
}

// AddSignature adds a signature made elsewhere (an offline key) after
// checking it, replacing an earlier one by the same key.
func AddSignature[T Signed](m *metadata.Metadata[T], pub PublicKey, sig []byte) error {
	payload, err := SignedBytes(m)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub.Key, payload, sig) {
		return fmt.Errorf("signature by key %s does not verify: %w", pub.ID, errdefs.ErrBadSignature)
	}
	_, id, err := TUFKey(pub)
	if err != nil {
		return err
	}
	out := m.Signatures[:0]
	for _, s := range m.Signatures {
		if s.KeyID != id {
			out = append(out, s)
		}
	}
	m.Signatures = append(out, metadata.Signature{KeyID: id, Signature: sig})
	return nil
}
