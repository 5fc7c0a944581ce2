package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
)

// leanFixture is a version of four files (entry 2 is a directory) and the
// spec 1 list that the lean one must reproduce.
func leanFixture() (contents []digest.Digest, c Contents, dl *Delivery, man digest.Digest) {
	d := func(s string) digest.Digest { return digest.Of([]byte(s)) }
	contents = []digest.Digest{d("new a"), d("new b"), {}, d("new c"), d("new d")}
	c = func(i int) (digest.Digest, int64, bool) {
		if i < 0 || i >= len(contents) || contents[i].IsZero() {
			return digest.Zero, 0, false
		}
		return contents[i], int64(100 + i), true
	}
	obj := func(i int) BlobRef {
		return BlobRef{SHA256: contents[i], Size: int64(100 + i), Stored: d("stored " + contents[i].String()), StoredSize: 50}
	}
	man = d("manifest 2")
	deltas := []DeltaRef{
		{From: d("old a"), To: contents[0], SHA256: d("delta a"), Size: 10},
		{From: d("older a"), To: contents[0], Codec: CodecDeflate, SHA256: d("delta a2"), Size: 9},
		{From: d("old d"), To: contents[4], With: contents[3], SHA256: d("delta d"), Size: 30},
		{From: d("manifest 1"), To: man, SHA256: d("delta m"), Size: 40},
	}
	dl = &Delivery{Type: "delivery", Spec: DeliverySpecLean, Version: 2,
		Objects:    []BlobRef{obj(1), obj(3), obj(4)},
		Deltas:     deltas,
		AllObjects: BlobRef{SHA256: d("all"), Size: 900, Stored: d("all stored"), StoredSize: 300},
		Packs: []Pack{{SHA256: d("pack"), Size: 70, Items: []PackItem{
			{SHA256: d("delta a"), Size: 10}, {SHA256: contents[1], Size: 101}, {SHA256: d("delta d"), Size: 30}}}},
	}
	dl.Sort()
	return contents, c, dl, man
}

func firstOf(contents []digest.Digest) map[digest.Digest]int {
	m := map[digest.Digest]int{}
	for i, d := range contents {
		if !d.IsZero() {
			m[d] = i
		}
	}
	return m
}

func TestLeanDeliveryRoundTrip(t *testing.T) {
	contents, c, want, man := leanFixture()
	b, err := EncodeLean(want, firstOf(contents), man)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range contents[:2] { // contents are named by entry, not repeated
		if bytes.Contains(b, []byte(d.String())) {
			t.Errorf("lean list repeats content %s:\n%s", d, b)
		}
	}
	got, err := ParseDelivery(b, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Before Resolve only the manifest delta is usable (it patches the
	// manifest that Resolve needs).
	if !got.Lean() || len(got.Deltas) != 1 || got.Deltas[0].To != man {
		t.Fatalf("before Resolve: lean %v, deltas %+v", got.Lean(), got.Deltas)
	}
	if err := got.Resolve(c); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Delivery{})); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestLeanObjectsRoundTrip(t *testing.T) {
	contents, c, dl, _ := leanFixture()
	b, err := EncodeLeanObjects(2, dl.Objects, firstOf(contents))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseObjects(b, 2, c)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dl.Objects, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if _, err := ParseObjects(b, 3, c); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("object list of another version: %v", err)
	}
}

// TestLeanDeliveryRefused: a reference to nothing, or to what is not a
// file, fails Resolve with a clear error; nothing is half-resolved.
func TestLeanDeliveryRefused(t *testing.T) {
	contents, c, dl, man := leanFixture()
	good, err := EncodeLean(dl, firstOf(contents), man)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new, msg string }{
		{"object entry past the end", `"objects":[{"e":1,`, `"objects":[{"e":9,`, "entry 9"},
		{"object entry a directory", `"objects":[{"e":1,`, `"objects":[{"e":2,`, "entry 2 is no file"},
		{"objects out of order", `},{"e":2,`, `},{"e":0,`, "out of order"},
		{"pack item past the deltas", `"items":[1,`, `"items":[7,`, "no delta 7"},
		{"pack item a directory", `"items":[1,-2,`, `"items":[1,-3,`, "entry 2 is no file"},
		{"second base past the end", `"w":4,`, `"w":40,`, "second base entry 39"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(good), tc.old) {
				t.Fatalf("fixture lacks %s:\n%s", tc.old, good)
			}
			dl, err := ParseDelivery([]byte(strings.Replace(string(good), tc.old, tc.new, 1)), 2)
			if err != nil {
				t.Fatal(err)
			}
			err = dl.Resolve(c)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error saying %q", err, tc.msg)
			}
			if !dl.Lean() {
				t.Fatalf("a failed Resolve changed the list")
			}
		})
	}
}

// TestDeliverySpecs: spec 1 still parses (and needs no Resolve); a spec
// this build does not know is refused by its number.
func TestDeliverySpecs(t *testing.T) {
	_, c, dl, _ := leanFixture()
	dl.Spec = DeliverySpec
	b, _ := json.Marshal(dl)
	got, err := ParseDelivery(b, 2)
	if err != nil || got.Lean() || got.Resolve(c) != nil || len(got.Objects) != 3 {
		t.Fatalf("spec 1: %v", err)
	}
	_, err = ParseDelivery([]byte(`{"type":"delivery","spec":3,"version":2}`), 2)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "spec 3") {
		t.Fatalf("spec 3: %v", err)
	}
}

// FuzzLeanDelivery: no list makes ParseDelivery or Resolve panic, and a
// resolved list's objects are contents of the manifest.
func FuzzLeanDelivery(f *testing.F) {
	contents, c, dl, man := leanFixture()
	b, err := EncodeLean(dl, firstOf(contents), man)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		dl, err := ParseDelivery(b, 2)
		if err != nil || dl.Resolve(c) != nil {
			return
		}
		known := firstOf(contents)
		for _, o := range dl.Objects {
			if _, ok := known[o.SHA256]; !ok {
				t.Fatalf("object %s is no content", o.SHA256)
			}
		}
	})
}
