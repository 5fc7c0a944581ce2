package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo/sigkey"
)

// The tests of issue 16's trust model, against the real Verifier and
// go-tuf: thresholds, keys counted once, the root chain, and what a
// thief of the online timestamp key can do.

func genKeys(t testing.TB, n int) []PrivateKey {
	t.Helper()
	out := make([]PrivateKey, n)
	for i := range out {
		k, err := sigkey.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	return out
}

// roles is who holds each role of a root, and how many must sign.
type roles struct {
	version                      int64
	root, targets, snap, tstamp  []PrivateKey
	rootT, targetsT, snapT, tstT int // thresholds; 0 is 1
}

func (r roles) meta(t testing.TB) *metadata.Metadata[metadata.RootType] {
	t.Helper()
	m := metadata.Root(now.Add(365 * 24 * time.Hour))
	m.Signed.Version = r.version
	for _, x := range []struct {
		role string
		keys []PrivateKey
		thr  int
	}{
		{metadata.ROOT, r.root, r.rootT},
		{metadata.TARGETS, r.targets, r.targetsT},
		{metadata.SNAPSHOT, r.snap, r.snapT},
		{metadata.TIMESTAMP, r.tstamp, r.tstT},
	} {
		for _, k := range x.keys {
			mk, _, err := TUFKey(k.Public())
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Signed.AddKey(mk, x.role); err != nil {
				t.Fatal(err)
			}
		}
		m.Signed.Roles[x.role].Threshold = max(x.thr, 1)
	}
	return m
}

// signedBytes signs m with keys (nothing else) and encodes it.
func signedBytes[T Signed](t testing.TB, m *metadata.Metadata[T], keys ...PrivateKey) []byte {
	t.Helper()
	m.ClearSignatures()
	for _, k := range keys {
		if err := SignMeta(m, k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metaPin(version int64, b []byte) *metadata.MetaFiles {
	d := digest.Of(b)
	return &metadata.MetaFiles{Version: version, Length: int64(len(b)), Hashes: metadata.Hashes{"sha256": d[:]}}
}

// release is one set of timestamp, snapshot and targets metadata.
type release struct {
	ts, snap, tgt                int64    // versions
	versions                     []uint64 // the versions the targets offer
	tsExpires                    time.Time
	tsKeys, snapKeys, targetKeys []PrivateKey
}

func (r release) files(t testing.TB) (ts, snap, tgt []byte) {
	t.Helper()
	tm := metadata.Targets(now.Add(365 * 24 * time.Hour))
	tm.Signed.Version = r.tgt
	for _, v := range r.versions {
		ref := BlobRef{SHA256: digest.Of([]byte{byte(v)}), Size: 1, Stored: digest.Of([]byte{byte(v), 0}), StoredSize: 2}
		ts, err := VersionTargets("stable", "", &VersionRef{Version: layout.Version(v), Created: now, Manifest: ref, Delivery: ref, Entries: 1})
		if err != nil {
			t.Fatal(err)
		}
		for n, f := range ts {
			tm.Signed.Targets[n] = f
		}
	}
	tgt = signedBytes(t, tm, r.targetKeys...)
	sm := metadata.Snapshot(now.Add(7 * 24 * time.Hour))
	sm.Signed.Version = r.snap
	sm.Signed.Meta[metadata.TARGETS+".json"] = metaPin(r.tgt, tgt)
	snap = signedBytes(t, sm, r.snapKeys...)
	exp := r.tsExpires
	if exp.IsZero() {
		exp = now.Add(24 * time.Hour)
	}
	tsm := metadata.Timestamp(exp)
	tsm.Signed.Version = r.ts
	tsm.Signed.Meta[metadata.SNAPSHOT+".json"] = metaPin(r.snap, snap)
	ts = signedBytes(t, tsm, r.tsKeys...)
	return ts, snap, tgt
}

// open runs the client's checks over a release from the trusted root,
// walking chain first, at time at.
func open(t *testing.T, trusted []byte, chain [][]byte, r release, seen *Seen, at time.Time) (*Verifier, *Index, error) {
	t.Helper()
	ts, snap, tgt := r.files(t)
	raw, err := MarshalBundle(Bundle{Roots: chain, Timestamp: ts, Snapshot: snap, Targets: tgt})
	if err != nil {
		t.Fatal(err)
	}
	return OpenBundle(context.Background(), raw, Trust{Root: trusted}, Expect{Channel: "stable", Now: at, Seen: seen})
}

func versionsOf(x *Index) []uint64 {
	var out []uint64
	for _, v := range x.Versions {
		out = append(out, uint64(v.Version))
	}
	return out
}

func checkErr(t *testing.T, err, want error, msg string) {
	t.Helper()
	if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if err != nil && !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q does not say %q", err, msg)
	}
}

// TestTUFThresholds: each role needs its threshold of distinct keys it
// lists; k-1 signatures, a signature repeated, or a key of another role
// do not make up the difference.
func TestTUFThresholds(t *testing.T) {
	tk, k := genKeys(t, 3), genKeys(t, 3)
	root := signedBytes(t, roles{version: 1, root: k[:1], targets: tk, snap: k[1:2], tstamp: k[2:3], targetsT: 2}.meta(t), k[0])
	base := release{ts: 1, snap: 1, tgt: 1, versions: []uint64{1}, tsKeys: k[2:3], snapKeys: k[1:2]}
	with := func(targets ...PrivateKey) release { r := base; r.targetKeys = targets; return r }
	for _, tc := range []struct {
		name string
		r    release
		want error
		msg  string
	}{
		{"2 of 3 targets keys", with(tk[0], tk[2]), nil, ""},
		{"3 of 3 targets keys", with(tk...), nil, ""},
		{"k-1: 1 of 3 targets keys", with(tk[1]), errdefs.ErrBadSignature, "not enough signatures"},
		{"none", with(), errdefs.ErrBadSignature, "not enough signatures"},
		{"1 targets key and a snapshot key", with(tk[0], k[1]), errdefs.ErrBadSignature, "not enough signatures"},
		{"1 targets key and the root key", with(tk[0], k[0]), errdefs.ErrBadSignature, "not enough signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, x, err := open(t, root, nil, tc.r, nil, now)
			checkErr(t, err, tc.want, tc.msg)
			if err == nil {
				if d := cmp.Diff([]uint64{1}, versionsOf(x)); d != "" {
					t.Fatalf("versions (-want +got):\n%s", d)
				}
			}
		})
	}
}

// TestTUFKeyCountsOnce: a key listed twice in a role, or under two key
// ids, or whose signature is repeated, is one key towards the threshold.
func TestTUFKeyCountsOnce(t *testing.T) {
	tk, k := genKeys(t, 2), genKeys(t, 3)
	base := roles{version: 1, root: k[:1], targets: tk[:1], snap: k[1:2], tstamp: k[2:3], targetsT: 2}
	rel := release{ts: 1, snap: 1, tgt: 1, versions: []uint64{1}, tsKeys: k[2:3], snapKeys: k[1:2]}

	// The same key id listed twice in the targets role.
	twice := base.meta(t)
	_, id0, err := TUFKey(tk[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	twice.Signed.Roles[metadata.TARGETS].KeyIDs = []string{id0, id0}

	// The same public key under a second key id: its hex in capitals,
	// which decodes to the same key.
	alias := base.meta(t)
	mk, _, err := TUFKey(tk[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	up := metadata.Key{Type: mk.Type, Scheme: mk.Scheme, Value: metadata.KeyVal{PublicKey: strings.ToUpper(mk.Value.PublicKey)}}
	aliasID, err := up.ID()
	if err != nil {
		t.Fatal(err)
	}
	if aliasID == id0 {
		t.Fatal("the alias has the same key id")
	}
	alias.Signed.Keys[aliasID] = &up
	alias.Signed.Roles[metadata.TARGETS].KeyIDs = []string{id0, aliasID}

	// The control: two distinct keys meet the threshold.
	two := base
	two.targets = tk

	for _, tc := range []struct {
		name string
		root *metadata.Metadata[metadata.RootType]
		sign func(m *metadata.Metadata[metadata.TargetsType])
		want error
		msg  string
	}{
		{"two distinct keys", two.meta(t), func(m *metadata.Metadata[metadata.TargetsType]) {
			mustSignMeta(t, m, tk...)
		}, nil, ""},
		{"one key id listed twice", twice, func(m *metadata.Metadata[metadata.TargetsType]) {
			mustSignMeta(t, m, tk[0])
		}, errdefs.ErrBadSignature, "not enough signatures, got 1, want 2"},
		{"one key under two key ids", alias, func(m *metadata.Metadata[metadata.TargetsType]) {
			mustSignMeta(t, m, tk[0])
			m.Signatures = append(m.Signatures, metadata.Signature{KeyID: aliasID, Signature: m.Signatures[0].Signature})
		}, errdefs.ErrBadSignature, "not enough signatures, got 1, want 2"},
		{"one signature repeated", two.meta(t), func(m *metadata.Metadata[metadata.TargetsType]) {
			mustSignMeta(t, m, tk[0])
			m.Signatures = append(m.Signatures, m.Signatures[0])
		}, errdefs.ErrBadSignature, "multiple signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := signedBytes(t, tc.root, k[0])
			ts, snap, tgt := retarget(t, rel, tc.sign)
			raw, err := MarshalBundle(Bundle{Timestamp: ts, Snapshot: snap, Targets: tgt})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = OpenBundle(context.Background(), raw, Trust{Root: root}, Expect{Now: now})
			checkErr(t, err, tc.want, tc.msg)
		})
	}
}

func mustSignMeta[T Signed](t *testing.T, m *metadata.Metadata[T], keys ...PrivateKey) {
	t.Helper()
	m.ClearSignatures()
	for _, k := range keys {
		if err := SignMeta(m, k); err != nil {
			t.Fatal(err)
		}
	}
}

// retarget is r's files with the targets signed by sign instead (and the
// snapshot and timestamp re-pinned to them).
func retarget(t *testing.T, r release, sign func(*metadata.Metadata[metadata.TargetsType])) (ts, snap, tgt []byte) {
	t.Helper()
	_, _, tb := r.files(t)
	tm, err := metadata.Targets().FromBytes(tb)
	if err != nil {
		t.Fatal(err)
	}
	sign(tm)
	if tgt, err = tm.ToBytes(true); err != nil {
		t.Fatal(err)
	}
	sm := metadata.Snapshot(now.Add(7 * 24 * time.Hour))
	sm.Signed.Version = r.snap
	sm.Signed.Meta[metadata.TARGETS+".json"] = metaPin(r.tgt, tgt)
	snap = signedBytes(t, sm, r.snapKeys...)
	tsm := metadata.Timestamp(now.Add(24 * time.Hour))
	tsm.Signed.Version = r.ts
	tsm.Signed.Meta[metadata.SNAPSHOT+".json"] = metaPin(r.snap, snap)
	return signedBytes(t, tsm, r.tsKeys...), snap, tgt
}

// TestTUFSignatureFlood: a mirror pads the timestamp (the one file nothing
// pins) with signatures under made-up key ids. Up to MaxMetaSignatures it
// changes nothing; past it the file is refused before go-tuf reads it.
func TestTUFSignatureFlood(t *testing.T) {
	k := genKeys(t, 3)
	root := signedBytes(t, roles{version: 1, root: k[:1], targets: k[:1], snap: k[1:2], tstamp: k[2:3]}.meta(t), k[0])
	r := release{ts: 1, snap: 1, tgt: 1, versions: []uint64{1}, tsKeys: k[2:3], snapKeys: k[1:2], targetKeys: k[:1]}
	ts, snap, tgt := r.files(t)
	for _, tc := range []struct {
		name string
		n    int // signatures in all, the good one first
		want error
	}{
		{"the good signature alone", 1, nil},
		{"padded to the cap", MaxMetaSignatures, nil},
		{"one over the cap", MaxMetaSignatures + 1, errdefs.ErrBadSignature},
		{"a flood", 20000, errdefs.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := MarshalBundle(Bundle{Timestamp: padSignatures(t, ts, tc.n-1), Snapshot: snap, Targets: tgt})
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = OpenBundle(context.Background(), raw, Trust{Root: root}, Expect{Channel: "stable", Now: now})
			msg := ""
			if tc.want != nil {
				msg = "more than 64"
			}
			checkErr(t, err, tc.want, msg)
		})
	}
}

// padSignatures appends n signatures under key ids no root lists.
func padSignatures(t testing.TB, b []byte, n int) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	sigs := m["signatures"].([]any)
	for i := range n {
		sigs = append(sigs, map[string]any{"keyid": fmt.Sprintf("%064x", i+1), "sig": strings.Repeat("ab", 64)})
	}
	m["signatures"] = sigs
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzOpenBundle: whatever a mirror serves as metadata, checking it
// returns an error or a verified index, and never panics.
func FuzzOpenBundle(f *testing.F) {
	k := genKeys(f, 3)
	root := signedBytes(f, roles{version: 1, root: k[:1], targets: k[:1], snap: k[1:2], tstamp: k[2:3]}.meta(f), k[0])
	r := release{ts: 1, snap: 1, tgt: 1, versions: []uint64{1, 2}, tsKeys: k[2:3], snapKeys: k[1:2], targetKeys: k[:1]}
	ts, snap, tgt := r.files(f)
	f.Add(ts, snap, tgt)
	f.Add(padSignatures(f, ts, 3), snap, tgt)
	f.Add([]byte(`{"signed":{},"signatures":[]}`), snap, tgt)
	f.Fuzz(func(t *testing.T, ts, snap, tgt []byte) {
		raw, err := MarshalBundle(Bundle{Timestamp: ts, Snapshot: snap, Targets: tgt})
		if err != nil {
			t.Fatal(err)
		}
		_, x, err := OpenBundle(context.Background(), raw, Trust{Root: root}, Expect{Channel: "stable", Now: now})
		if err == nil && x == nil {
			t.Fatal("no error and no index")
		}
	})
}
