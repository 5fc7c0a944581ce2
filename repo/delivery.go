package repo

import (
	"fmt"
	"sort"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
)

// DeliverySpec is the delivery list format version.
const DeliverySpec = 1

// Delivery says how to get each content of one version: the stored object
// for every digest in its manifest, and binary deltas from older contents.
// It is pinned by hash in the signed index, so every size in it is signed.
type Delivery struct {
	Type    string     `json:"type"` // "delivery"
	Spec    int        `json:"spec"`
	Version uint64     `json:"version"`
	Objects []BlobRef  `json:"objects"` // sorted by SHA256, unique
	Deltas  []DeltaRef `json:"deltas"`  // sorted by (To, From), unique
}

// DeltaRef is a zstd patch that turns content From into content To.
type DeltaRef struct {
	From   digest.Digest `json:"from"`
	To     digest.Digest `json:"to"`
	SHA256 digest.Digest `json:"sha256"` // of the delta file
	Size   int64         `json:"size"`
}

// Object finds the stored object for content d.
func (dl *Delivery) Object(d digest.Digest) *BlobRef {
	i := sort.Search(len(dl.Objects), func(i int) bool { return !less(dl.Objects[i].SHA256, d) })
	if i < len(dl.Objects) && dl.Objects[i].SHA256 == d {
		return &dl.Objects[i]
	}
	return nil
}

// DeltasTo lists the deltas that produce content to.
func (dl *Delivery) DeltasTo(to digest.Digest) []DeltaRef {
	i := sort.Search(len(dl.Deltas), func(i int) bool { return !less(dl.Deltas[i].To, to) })
	j := i
	for j < len(dl.Deltas) && dl.Deltas[j].To == to {
		j++
	}
	return dl.Deltas[i:j]
}

// Sort puts lists in their canonical order.
func (dl *Delivery) Sort() {
	sort.Slice(dl.Objects, func(i, j int) bool { return less(dl.Objects[i].SHA256, dl.Objects[j].SHA256) })
	sort.Slice(dl.Deltas, func(i, j int) bool { return deltaLess(dl.Deltas[i], dl.Deltas[j]) })
}

func less(a, b digest.Digest) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func deltaLess(a, b DeltaRef) bool {
	if a.To != b.To {
		return less(a.To, b.To)
	}
	return less(a.From, b.From)
}

// ParseDelivery decodes and validates a delivery list for version v.
func ParseDelivery(b []byte, v uint64) (*Delivery, error) {
	var dl Delivery
	if err := strictJSON(b, &dl); err != nil {
		return nil, fmt.Errorf("delivery: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if dl.Type != "delivery" || dl.Spec != DeliverySpec || dl.Version != v {
		return nil, fmt.Errorf("delivery: type %q spec %d version %d, want version %d: %w", dl.Type, dl.Spec, dl.Version, v, errdefs.ErrInvalidArgument)
	}
	for i := range dl.Objects {
		o := &dl.Objects[i]
		if err := o.check(); err != nil {
			return nil, fmt.Errorf("delivery object %s: %w", o.SHA256, err)
		}
		if i > 0 && !less(dl.Objects[i-1].SHA256, o.SHA256) {
			return nil, fmt.Errorf("delivery objects unsorted or duplicated at %s: %w", o.SHA256, errdefs.ErrInvalidArgument)
		}
	}
	for i, d := range dl.Deltas {
		if d.Size <= 0 || d.Size > MaxBlob || d.From == d.To {
			return nil, fmt.Errorf("delivery delta %s-%s: bad size or identity: %w", d.From, d.To, errdefs.ErrInvalidArgument)
		}
		if i > 0 && !deltaLess(dl.Deltas[i-1], d) {
			return nil, fmt.Errorf("delivery deltas unsorted or duplicated at %s-%s: %w", d.From, d.To, errdefs.ErrInvalidArgument)
		}
	}
	return &dl, nil
}

// Repository paths, relative to a mirror's base URL.
const IndexPath = "index.json"

// ObjectPath is where the stored (compressed) object for content d lives.
func ObjectPath(d digest.Digest) string { return "objects/" + d.Path() + ".zst" }

// DeltaPath is where the delta From -> To lives.
func DeltaPath(from, to digest.Digest) string {
	t := to.String()
	return "deltas/" + t[:2] + "/" + from.String() + "-" + t + ".zst"
}
