package repo

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/repo/sigkey"
)

// countVerify counts signature checks for the duration of a test.
func countVerify(t *testing.T) *int {
	n := new(int)
	verifySig = func(pub ed25519.PublicKey, msg, sig []byte) bool {
		*n++
		return ed25519.Verify(pub, msg, sig)
	}
	t.Cleanup(func() { verifySig = ed25519.Verify })
	return n
}

// flood returns good's message with sigs bogus signatures naming key,
// followed by good's own signatures.
func flood(t *testing.T, good []byte, key string, sigs int) []byte {
	t.Helper()
	var env Envelope
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	bogus := make([]Signature, sigs, sigs+len(env.Signatures))
	for i := range bogus {
		bogus[i] = Signature{KeyID: key, Sig: make([]byte, ed25519.SignatureSize)}
	}
	env.Signatures = append(bogus, env.Signatures...)
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignatureFlood(t *testing.T) {
	k, _ := sigkey.GenerateKey()
	k2, _ := sigkey.GenerateKey()
	kr := Keyring{k.ID: k.Public(), k2.ID: k2.Public()}
	good := mustSign(t, index(5, now.Add(time.Hour), 1), k)
	exp := Expect{Channel: "stable", Now: now}
	for _, tc := range []struct {
		name     string
		b        []byte
		want     error
		maxCalls int
	}{
		// 40,000 bogus signatures naming a trusted key: refused before any check.
		{"tens of thousands of signatures", flood(t, good, k.ID, 40000), errdefs.ErrBadSignature, 0},
		{"just over the cap", flood(t, good, k2.ID, MaxSignatures), errdefs.ErrBadSignature, 0},
		// Under the cap, a key named again is not checked again: k2 once, k once.
		{"repeated key id", flood(t, good, k2.ID, MaxSignatures-1), nil, 2},
		{"repeated key id, no good one", flood(t, mustSign(t, index(5, now.Add(time.Hour), 1)), k.ID, MaxSignatures), errdefs.ErrBadSignature, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := countVerify(t)
			_, err := openLegacy(context.Background(), tc.b, kr, exp)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if *n > tc.maxCalls {
				t.Fatalf("%d signature checks, want at most %d", *n, tc.maxCalls)
			}
		})
	}
}

func TestOpenIndexCancel(t *testing.T) {
	k, _ := sigkey.GenerateKey()
	kr := Keyring{k.ID: k.Public()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := countVerify(t)
	_, err := openLegacy(ctx, mustSign(t, index(5, now.Add(time.Hour), 1), k), kr, Expect{Now: now})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if *n != 0 {
		t.Fatalf("%d signature checks after cancel", *n)
	}
}
