package repo

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
)

// TestTUFRootRotation: a new root counts only when the thresholds of both
// the old and the new root signed it, one version at a time (TUF 5.3.4),
// and a targets key the new root drops is refused from then on.
func TestTUFRootRotation(t *testing.T) {
	rk := genKeys(t, 5) // root keys: v1 lists 0,1,2; v2 and v3 list 2,3,4
	tk := genKeys(t, 2) // targets: v1 lists 0; v2 and v3 list 1 (0 revoked)
	on := genKeys(t, 2) // snapshot, timestamp
	v1r := roles{version: 1, root: rk[:3], targets: tk[:1], snap: on[:1], tstamp: on[1:], rootT: 2}
	v2r := roles{version: 2, root: rk[2:], targets: tk[1:], snap: on[:1], tstamp: on[1:], rootT: 2}
	v3r := v2r
	v3r.version = 3
	v1 := signedBytes(t, v1r.meta(t), rk[0], rk[1])
	v2 := signedBytes(t, v2r.meta(t), rk[0], rk[1], rk[3], rk[4])
	v3 := signedBytes(t, v3r.meta(t), rk[3], rk[4])
	rel := func(targets PrivateKey) release {
		return release{ts: 1, snap: 1, tgt: 1, versions: []uint64{1}, tsKeys: on[1:], snapKeys: on[:1], targetKeys: []PrivateKey{targets}}
	}
	for _, tc := range []struct {
		name    string
		trusted []byte
		chain   [][]byte
		r       release
		want    error
		msg     string
		root    int64 // the trusted root version after
	}{
		{"no rotation, targets key 0", v1, nil, rel(tk[0]), nil, "", 1},
		{"old and new thresholds", v1, [][]byte{v1, v2}, rel(tk[1]), nil, "", 2},
		{"chain of two", v1, [][]byte{v1, v2, v3}, rel(tk[1]), nil, "", 3},
		{"revoked targets key after rotation", v1, [][]byte{v1, v2}, rel(tk[0]), errdefs.ErrBadSignature, "targets failed, not enough signatures", 0},
		{"revoked targets key, root already rotated", v2, [][]byte{v1}, rel(tk[0]), errdefs.ErrBadSignature, "targets failed, not enough signatures", 0},
		{"new threshold only", v1, [][]byte{signedBytes(t, v2r.meta(t), rk[3], rk[4])}, rel(tk[1]), errdefs.ErrBadSignature, "root failed, not enough signatures", 0},
		{"old threshold only", v1, [][]byte{signedBytes(t, v2r.meta(t), rk[0], rk[1])}, rel(tk[1]), errdefs.ErrBadSignature, "root failed, not enough signatures", 0},
		{"k-1 of old and of new", v1, [][]byte{signedBytes(t, v2r.meta(t), rk[0], rk[3])}, rel(tk[1]), errdefs.ErrBadSignature, "root failed, not enough signatures", 0},
		{"a key in both counts for both", v1, [][]byte{signedBytes(t, v2r.meta(t), rk[0], rk[2], rk[3])}, rel(tk[1]), nil, "", 2},
		{"gap: 1 then 3", v1, [][]byte{v1, v3}, rel(tk[1]), errdefs.ErrBadSignature, "jumps from version 1 to 3", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, x, err := open(t, tc.trusted, tc.chain, tc.r, nil, now)
			checkErr(t, err, tc.want, tc.msg)
			if err != nil {
				return
			}
			if got := v.RootVersion(); got != tc.root {
				t.Fatalf("trusted root %d, want %d", got, tc.root)
			}
			if d := cmp.Diff([]uint64{1}, versionsOf(x)); d != "" {
				t.Fatalf("versions (-want +got):\n%s", d)
			}
		})
	}

	// The gap refused by the state machine itself too, not only by the
	// bundle's walk: the engine hands it each root as fetched.
	t.Run("gap: UpdateRoot", func(t *testing.T) {
		v, err := NewVerifier(context.Background(), Trust{Root: v1}, Expect{Now: now}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkErr(t, v.UpdateRoot(v3), errdefs.ErrBadSignature, "root 2")
		if v.RootVersion() != 1 {
			t.Fatalf("trusted root %d after a refused gap", v.RootVersion())
		}
	})
}

// TestTUFLeakedTimestampKey: whoever steals the online timestamp key can
// hold clients at what the snapshot and targets keys last signed, until
// that snapshot expires, and never offer anything those keys did not
// sign; rotating the key in a new root ends even a far-future timestamp
// the thief made clients see (TUF 5.3.11).
func TestTUFLeakedTimestampKey(t *testing.T) {
	rk, tk, sk := genKeys(t, 1), genKeys(t, 1), genKeys(t, 1)
	leaked, fresh := genKeys(t, 1), genKeys(t, 1)
	v1r := roles{version: 1, root: rk, targets: tk, snap: sk, tstamp: leaked}
	v2r := v1r
	v2r.version, v2r.tstamp = 2, fresh
	v1 := signedBytes(t, v1r.meta(t), rk...)
	v2 := signedBytes(t, v2r.meta(t), rk...)

	honest1 := release{ts: 1, snap: 1, tgt: 1, versions: []uint64{1}, tsKeys: leaked, snapKeys: sk, targetKeys: tk}
	honest2 := release{ts: 2, snap: 2, tgt: 2, versions: []uint64{1, 2}, tsKeys: leaked, snapKeys: sk, targetKeys: tk}
	// The thief's replay of release 1: a huge version, a far expiry.
	far := now.Add(10 * 365 * 24 * time.Hour)
	freeze := honest1
	freeze.ts, freeze.tsExpires = 1000, far
	// The thief's own release 3, every role signed by the stolen key.
	forged := release{ts: 1001, snap: 3, tgt: 3, versions: []uint64{1, 2, 3}, tsExpires: far, tsKeys: leaked, snapKeys: leaked, targetKeys: leaked}
	// Were the snapshot key stolen too: the targets are still the thief's.
	forgedTargets := forged
	forgedTargets.snapKeys = sk

	_, _, err := open(t, v1, nil, honest1, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	frozen, x, err := open(t, v1, nil, freeze, nil, now)
	if err != nil {
		t.Fatalf("the thief's replay: %v", err)
	}
	if d := cmp.Diff([]uint64{1}, versionsOf(x)); d != "" {
		t.Fatalf("frozen at (-want +got):\n%s", d)
	}
	seen := frozen.Seen()

	rotated := honest2
	rotated.ts, rotated.tsKeys = 3, fresh
	for _, tc := range []struct {
		name    string
		trusted []byte
		chain   [][]byte
		r       release
		at      time.Time
		want    error
		msg     string
		vers    []uint64
	}{
		{"honest release after the thief's version", v1, nil, honest2, now, errdefs.ErrBadSignature, "must be >= 1000", nil},
		{"the thief's replay, the snapshot valid", v1, nil, freeze, now.Add(6 * 24 * time.Hour), nil, "", []uint64{1}},
		{"the thief's replay, the snapshot expired", v1, nil, freeze, now.Add(8 * 24 * time.Hour), errdefs.ErrBadSignature, "snapshot.json is expired", nil},
		{"the thief's snapshot", v1, nil, forged, now, errdefs.ErrBadSignature, "snapshot failed, not enough signatures", nil},
		{"the thief's targets, even with the snapshot key", v1, nil, forgedTargets, now, errdefs.ErrBadSignature, "targets failed, not enough signatures", nil},
		{"rotated: honest release with the new key", v1, [][]byte{v1, v2}, rotated, now, nil, "", []uint64{1, 2}},
		{"rotated: the thief's replay", v1, [][]byte{v1, v2}, freeze, now, errdefs.ErrBadSignature, "timestamp failed, not enough signatures", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := seen
			_, x, err := open(t, tc.trusted, tc.chain, tc.r, &s, tc.at)
			checkErr(t, err, tc.want, tc.msg)
			if err == nil {
				if d := cmp.Diff(tc.vers, versionsOf(x)); d != "" {
					t.Fatalf("versions (-want +got):\n%s", d)
				}
			}
		})
	}
}

// TestTUFReplayExpires: a mirror with no key can replay a timestamp only
// until it expires, a day after it was signed by default.
func TestTUFReplayExpires(t *testing.T) {
	k := genKeys(t, 4)
	root := signedBytes(t, roles{version: 1, root: k[:1], targets: k[1:2], snap: k[2:3], tstamp: k[3:]}.meta(t), k[0])
	r := release{ts: 1, snap: 1, tgt: 1, versions: []uint64{1}, tsKeys: k[3:], snapKeys: k[2:3], targetKeys: k[1:2]}
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
		msg  string
	}{
		{"within the day", now.Add(23 * time.Hour), nil, ""},
		{"after the day", now.Add(25 * time.Hour), errdefs.ErrBadSignature, "timestamp.json is expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := open(t, root, nil, r, nil, tc.at)
			checkErr(t, err, tc.want, tc.msg)
		})
	}
}
