// Package sigkey is the Ed25519 keys of a repository and of a machine's
// trust: key files, key ids and the keyring. It is apart from package repo
// so that the daemon, which reads the keys at start and hands them to each
// job's worker, links neither TUF's metadata nor its dependencies.
package sigkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"laptop.org/upgrade/errdefs"
)

// KeyID names a public key: the first 8 bytes of SHA-256 of the key, hex.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// PublicKey is a trusted key.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// PrivateKey signs indexes on the build server.
type PrivateKey struct {
	ID  string
	Key ed25519.PrivateKey
}

// GenerateKey makes a new key pair.
func GenerateKey() (PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PrivateKey{}, err
	}
	return PrivateKey{ID: KeyID(pub), Key: priv}, nil
}

// Public returns the matching public key.
func (k PrivateKey) Public() PublicKey {
	pub := k.Key.Public().(ed25519.PublicKey)
	return PublicKey{ID: KeyID(pub), Key: pub}
}

// Key files are one line: "ed25519-public <base64>" or "ed25519-private <base64 seed>".
const (
	pubTag  = "ed25519-public"
	privTag = "ed25519-private"
)

// MarshalPublic encodes a public key file.
func MarshalPublic(k PublicKey) []byte {
	return []byte(pubTag + " " + base64.StdEncoding.EncodeToString(k.Key) + "\n")
}

// MarshalPrivate encodes a private key file (keep it 0600).
func MarshalPrivate(k PrivateKey) []byte {
	return []byte(privTag + " " + base64.StdEncoding.EncodeToString(k.Key.Seed()) + "\n")
}

func parseKeyLine(b []byte, tag string, size int) ([]byte, error) {
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] != tag {
		return nil, fmt.Errorf("want %q and base64: %w", tag, errdefs.ErrInvalidArgument)
	}
	raw, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(raw) != size {
		return nil, fmt.Errorf("bad %s key bytes: %w", tag, errdefs.ErrInvalidArgument)
	}
	return raw, nil
}

// ParsePublic decodes a public key file.
func ParsePublic(b []byte) (PublicKey, error) {
	raw, err := parseKeyLine(b, pubTag, ed25519.PublicKeySize)
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{ID: KeyID(raw), Key: raw}, nil
}

// ParsePrivate decodes a private key file.
func ParsePrivate(b []byte) (PrivateKey, error) {
	raw, err := parseKeyLine(b, privTag, ed25519.SeedSize)
	if err != nil {
		return PrivateKey{}, err
	}
	priv := ed25519.NewKeyFromSeed(raw)
	return PrivateKey{ID: KeyID(priv.Public().(ed25519.PublicKey)), Key: priv}, nil
}

// LoadPrivate reads a private key file.
func LoadPrivate(path string) (PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PrivateKey{}, err
	}
	k, err := ParsePrivate(b)
	if err != nil {
		return k, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Keyring is the set of trusted public keys.
type Keyring map[string]PublicKey

// LoadKeyring reads every *.pub file in dir. An empty keyring is an error:
// trusting nothing must not mean accepting anything.
func LoadKeyring(dir string) (Keyring, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	kr := Keyring{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		k, err := ParsePublic(b)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", n, err)
		}
		kr[k.ID] = k
	}
	if len(kr) == 0 {
		return nil, fmt.Errorf("no trusted keys (*.pub) in %s: %w", dir, errdefs.ErrFailedPrecondition)
	}
	return kr, nil
}

// LoadTrust reads where a machine's trust starts: the TUF root shipped in
// its slot (rootFile, may be absent) and the keys of the format before TUF
// (keysDir, may be empty when there is a root). Neither is an error.
func LoadTrust(rootFile, keysDir string) ([]byte, Keyring, error) {
	root, err := os.ReadFile(rootFile)
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, err
	}
	kr, kerr := LoadKeyring(keysDir)
	if kerr != nil && (root == nil || !errors.Is(kerr, errdefs.ErrFailedPrecondition)) {
		if root == nil {
			return nil, nil, fmt.Errorf("no trusted root (%s) and %w", rootFile, kerr)
		}
		return nil, nil, kerr
	}
	return root, kr, nil
}
