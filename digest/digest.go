// Package digest names content by its SHA-256. Every object in the repository,
// every file in a manifest and every staged download is addressed by one.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"laptop.org/upgrade/errdefs"
)

// Digest is a SHA-256. The zero value means "none".
type Digest [sha256.Size]byte

// Zero is the empty digest.
var Zero Digest

// IsZero reports whether d is unset.
func (d Digest) IsZero() bool { return d == Zero }

// String is lowercase hex, as used in file names and URLs.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// MarshalText encodes as lowercase hex.
func (d Digest) MarshalText() ([]byte, error) {
	b := make([]byte, hex.EncodedLen(len(d)))
	hex.Encode(b, d[:])
	return b, nil
}

// UnmarshalText accepts exactly 64 lowercase hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Parse decodes 64 lowercase hex digits.
func Parse(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("digest %q: want %d hex digits: %w", s, 2*len(d), errdefs.ErrInvalidArgument)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return d, fmt.Errorf("digest %q: not lowercase hex: %w", s, errdefs.ErrInvalidArgument)
		}
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("digest %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	return d, nil
}

// Of hashes b.
func Of(b []byte) Digest { return sha256.Sum256(b) }

// FromReader hashes everything r yields and returns the digest and byte count.
func FromReader(r io.Reader) (Digest, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return Zero, n, err
	}
	return Sum(h), n, nil
}

// Sum reads a finished hash.Hash (a SHA-256) into a Digest.
func Sum(h hash.Hash) Digest {
	var d Digest
	h.Sum(d[:0])
	return d
}

// Path returns the fan-out path used by stores and the repository: "ab/abcd...".
func (d Digest) Path() string {
	s := d.String()
	return s[:2] + "/" + s
}

// Writer passes writes through to W, hashing and counting them.
type Writer struct {
	W io.Writer
	h hash.Hash
	N int64
}

// NewWriter wraps w.
func NewWriter(w io.Writer) *Writer { return &Writer{W: w, h: sha256.New()} }

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.W.Write(p)
	w.h.Write(p[:n])
	w.N += int64(n)
	return n, err
}

// Digest of everything written so far.
func (w *Writer) Digest() Digest { return Sum(w.h) }
