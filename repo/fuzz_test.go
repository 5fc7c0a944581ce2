package repo

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/repo/sigkey"
)

// fuzzKey is a fixed key, so that seeds signed with it stay valid.
var fuzzKey = func() PrivateKey {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	return PrivateKey{ID: sigkey.KeyID(priv.Public().(ed25519.PublicKey)), Key: priv}
}()

// FuzzOpenIndexSigned feeds arbitrary envelopes to the index verifier. It must
// never panic, every error must carry a class, and an accepted index must
// honour what OpenIndex promises: ascending versions with sane pins.
// Seeds: testdata/fuzz/FuzzOpenIndexSigned (validly signed by the fixed key,
// unlike FuzzOpenIndex in index_test.go whose key changes every run).
func FuzzOpenIndexSigned(f *testing.F) {
	ref := BlobRef{SHA256: digest.Of([]byte("m")), Size: 1, Stored: digest.Of([]byte("z")), StoredSize: 10}
	b, err := SignLegacyIndex(&Index{Channel: "stable", Serial: 3, Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		Versions: []VersionRef{{Version: 1, Manifest: ref, Delivery: ref, Entries: 1}}}, fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	kr := Keyring{fuzzKey.ID: fuzzKey.Public()}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := openLegacy(context.Background(), b, kr, Expect{Channel: "stable", Now: now}, &SeenIndex{Serial: 2})
		if err != nil {
			if !errors.Is(err, errdefs.ErrBadSignature) && !errors.Is(err, errdefs.ErrPolicy) &&
				!errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrTooLarge) {
				t.Fatalf("error without a class: %v", err)
			}
			return
		}
		if x.Serial < 2 || !now.Before(x.Expires) || x.Channel != "stable" {
			t.Fatalf("accepted serial %d expiring %s on channel %q", x.Serial, x.Expires, x.Channel)
		}
		for i, v := range x.Versions {
			if i > 0 && v.Version <= x.Versions[i-1].Version || v.Manifest.check() != nil || v.Delivery.check() != nil {
				t.Fatalf("accepted bad version list %+v", x.Versions)
			}
		}
		if _, err := SeenOf(b, x); err != nil {
			t.Fatalf("SeenOf of an accepted index: %v", err)
		}
	})
}
