package repo

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/digest"
)

func TestDeliveryDeltaCodecs(t *testing.T) {
	a, b, c := digest.Of([]byte("a")), digest.Of([]byte("b")), digest.Of([]byte("c"))
	ref := func(d digest.Digest) BlobRef { return BlobRef{SHA256: d, Size: 1, Stored: d, StoredSize: 1} }
	list := func(ds ...DeltaRef) []byte {
		dl := Delivery{Type: "delivery", Spec: 1, Version: 2, Objects: []BlobRef{ref(b)}, Deltas: ds}
		dl.Sort()
		out, _ := json.Marshal(dl)
		return out
	}
	for _, tc := range []struct {
		name   string
		in     []byte
		ok     bool
		usable int // deltas to b left by KeepDeltaCodecs(DeltaCodecs())
	}{
		{"plain and deflate", list(DeltaRef{From: a, To: b, SHA256: a, Size: 3}, DeltaRef{From: c, To: b, Codec: CodecDeflate, SHA256: c, Size: 2}), true, 2},
		{"a codec this build lacks", list(DeltaRef{From: a, To: b, Codec: "zucchini9", SHA256: a, Size: 3}, DeltaRef{From: c, To: b, SHA256: c, Size: 2}), true, 1},
		{"codec that is a path", list(DeltaRef{From: a, To: b, Codec: "../../x", SHA256: a, Size: 3}), false, 0},
		{"codec with a second base", list(DeltaRef{From: a, To: b, With: c, Codec: CodecDeflate, SHA256: a, Size: 3}), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dl, err := ParseDelivery(tc.in, 2)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v", err)
			}
			if !tc.ok {
				return
			}
			dl.KeepDeltaCodecs(DeltaCodecs())
			if got := len(dl.DeltasTo(b)); got != tc.usable {
				t.Fatalf("%d usable deltas, want %d", got, tc.usable)
			}
		})
	}
}

func TestKeepDeltaCodecsPlainOnly(t *testing.T) {
	a, b := digest.Of([]byte("a")), digest.Of([]byte("b"))
	dl := Delivery{Deltas: []DeltaRef{{From: a, To: b, Codec: CodecDeflate, Size: 1}, {From: b, To: a, Size: 1}}}
	dl.KeepDeltaCodecs([]string{""})
	if diff := cmp.Diff([]DeltaRef{{From: b, To: a, Size: 1}}, dl.Deltas); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestDeltaPathNamesCodec(t *testing.T) {
	a, b := digest.Of([]byte("a")), digest.Of([]byte("b"))
	plain, puffed := DeltaRef{From: a, To: b}, DeltaRef{From: a, To: b, Codec: CodecDeflate}
	if plain.Path() == puffed.Path() || !strings.HasSuffix(puffed.Path(), ".deflate.zst") {
		t.Fatalf("paths %s and %s", plain.Path(), puffed.Path())
	}
}
