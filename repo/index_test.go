package repo

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo/sigkey"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func index(serial uint64, expires time.Time, versions ...uint64) *Index {
	x := &Index{Channel: "stable", Hardware: "xo-4", Serial: serial, Timestamp: now, Expires: expires}
	for _, v := range versions {
		ref := BlobRef{SHA256: digest.Of([]byte{byte(v)}), Size: 10, Stored: digest.Of([]byte{byte(v), 1}), StoredSize: 5}
		x.Versions = append(x.Versions, VersionRef{Version: layout.Version(v), Created: now, Manifest: ref, Delivery: ref})
	}
	return x
}

func mustSign(t *testing.T, x *Index, keys ...PrivateKey) []byte {
	t.Helper()
	b, err := SignLegacyIndex(x, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenIndex(t *testing.T) {
	k, _ := sigkey.GenerateKey()
	other, _ := sigkey.GenerateKey()
	kr := Keyring{k.ID: k.Public()}
	good := mustSign(t, index(5, now.Add(time.Hour), 1, 2), k)
	seen5, _ := SeenOf(good, index(5, now, 1, 2))
	exp := Expect{Channel: "stable", Hardware: "xo-4", Now: now}
	tamper := func(b []byte) []byte {
		var env Envelope
		json.Unmarshal(b, &env)
		env.Signed = []byte(strings.Replace(string(env.Signed), `"serial":5`, `"serial":9`, 1))
		out, _ := json.Marshal(env)
		return out
	}
	for _, tc := range []struct {
		name string
		b    []byte
		exp  Expect
		want error
		msg  string
		seen *SeenIndex
	}{
		{"good", good, exp, nil, "", nil},
		{"good, same serial seen", good, Expect{Channel: "stable", Now: now}, nil, "", &seen5},
		{"unsigned", mustSign(t, index(5, now.Add(time.Hour), 1)), exp, errdefs.ErrBadSignature, "no valid signature", nil},
		{"unknown key", mustSign(t, index(5, now.Add(time.Hour), 1), other), exp, errdefs.ErrBadSignature, "no valid signature", nil},
		{"signature over other bytes", tamper(good), exp, errdefs.ErrBadSignature, "no valid signature", nil},
		{"expired", mustSign(t, index(5, now.Add(-time.Second), 1), k), exp, errdefs.ErrBadSignature, "expired", nil},
		{"older serial (rollback or replay)", mustSign(t, index(4, now.Add(time.Hour), 1), k), Expect{Channel: "stable", Now: now}, errdefs.ErrBadSignature, "older", &seen5},
		{"same serial, other bytes", mustSign(t, index(5, now.Add(2*time.Hour), 1), k), Expect{Channel: "stable", Now: now}, errdefs.ErrBadSignature, "differs", &seen5},
		{"other channel", good, Expect{Channel: "testing", Now: now}, errdefs.ErrPolicy, "channel", nil},
		{"other hardware", good, Expect{Channel: "stable", Hardware: "xo-1", Now: now}, errdefs.ErrPolicy, "hardware", nil},
		{"versions not ascending", mustSign(t, index(5, now.Add(time.Hour), 2, 2), k), exp, errdefs.ErrBadSignature, "ascending", nil},
		{"garbage", []byte("{"), exp, errdefs.ErrBadSignature, "envelope", nil},
		{"too large", make([]byte, MaxIndexSize+1), exp, errdefs.ErrTooLarge, "bytes", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openLegacy(context.Background(), tc.b, kr, tc.exp, tc.seen)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	k, _ := sigkey.GenerateKey()
	p, err := sigkey.ParsePrivate(sigkey.MarshalPrivate(k))
	if err != nil || p.ID != k.ID {
		t.Fatal(err)
	}
	pub, err := sigkey.ParsePublic(sigkey.MarshalPublic(k.Public()))
	if err != nil || pub.ID != k.ID {
		t.Fatal(err)
	}
	if _, err := sigkey.ParsePublic([]byte("ed25519-public AAAA")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := sigkey.LoadKeyring(t.TempDir()); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("empty keyring must be an error: %v", err)
	}
}

func TestParseDelivery(t *testing.T) {
	a, b := digest.Of([]byte("a")), digest.Of([]byte("b"))
	if less(b, a) {
		a, b = b, a
	}
	ref := func(d digest.Digest) BlobRef { return BlobRef{SHA256: d, Size: 1, Stored: d, StoredSize: 1} }
	enc := func(dl Delivery) []byte { b, _ := json.Marshal(dl); return b }
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"good", enc(Delivery{Type: "delivery", Spec: 1, Version: 2, Objects: []BlobRef{ref(a), ref(b)}, Deltas: []DeltaRef{{From: a, To: b, SHA256: a, Size: 3}}}), true},
		{"other version (mix and match)", enc(Delivery{Type: "delivery", Spec: 1, Version: 1}), false},
		{"unsorted objects", enc(Delivery{Type: "delivery", Spec: 1, Version: 2, Objects: []BlobRef{ref(b), ref(a)}}), false},
		{"duplicate objects", enc(Delivery{Type: "delivery", Spec: 1, Version: 2, Objects: []BlobRef{ref(a), ref(a)}}), false},
		{"negative size", enc(Delivery{Type: "delivery", Spec: 1, Version: 2, Objects: []BlobRef{{SHA256: a, Size: -1, StoredSize: 1}}}), false},
		{"delta to itself", enc(Delivery{Type: "delivery", Spec: 1, Version: 2, Deltas: []DeltaRef{{From: a, To: a, Size: 1}}}), false},
		{"unknown field", []byte(`{"type":"delivery","spec":1,"version":2,"objects":[],"deltas":[],"x":1}`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dl, err := ParseDelivery(tc.in, 2)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v", err)
			}
			if tc.ok && (dl.Object(a) == nil || len(dl.DeltasTo(b)) != 1 || len(dl.DeltasTo(a)) != 0) {
				t.Fatal("lookups wrong")
			}
		})
	}
}

func FuzzOpenIndex(f *testing.F) {
	k, _ := sigkey.GenerateKey()
	kr := Keyring{k.ID: k.Public()}
	b, _ := SignLegacyIndex(index(1, now.Add(time.Hour), 1, 2), k)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := openLegacy(context.Background(), b, kr, Expect{Channel: "stable", Now: now})
		if err == nil && x.Channel != "stable" {
			t.Fatal("accepted another channel")
		}
	})
}

func FuzzParseDelivery(f *testing.F) {
	f.Add([]byte(`{"type":"delivery","spec":1,"version":2,"objects":[],"deltas":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dl, err := ParseDelivery(b, 2)
		if err != nil {
			return
		}
		for _, o := range dl.Objects {
			if dl.Object(o.SHA256) == nil {
				t.Fatal("listed object not found")
			}
		}
	})
}

// openLegacy is OpenLegacyIndex with the seen record after the expectation.
func openLegacy(ctx context.Context, b []byte, kr Keyring, exp Expect, seen ...*SeenIndex) (*Index, error) {
	var s *SeenIndex
	if len(seen) > 0 {
		s = seen[0]
	}
	return OpenLegacyIndex(ctx, b, kr, exp, s)
}
