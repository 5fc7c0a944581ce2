package repo

import (
	"fmt"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// DeliverySpecLean is the delivery list format that names contents by
// their entry in the version's manifest instead of repeating the digests
// and sizes the manifest already pins: on a release upgrade the plain list
// (spec 1) is mostly those repeated digests. The client expands it
// (Delivery.Resolve) into the same Delivery as spec 1, so every byte it
// downloads is still checked against a digest the signed index pins, by
// way of the manifest or the list.
const DeliverySpecLean = 2

// Contents resolves entry i of the version's manifest to its content
// digest and size; ok is false when entry i is out of range or not a
// regular file. manifest.Manifest.Content is one.
type Contents func(i int) (d digest.Digest, size int64, ok bool)

// leanDelivery is the spec 2 document. Entry numbers (E) are gaps: each is
// the difference from the previous item's entry in the same list (the
// first from 0), so a release's sorted lists are small numbers.
type leanDelivery struct {
	Type          string         `json:"type"` // "delivery"
	Spec          int            `json:"spec"` // DeliverySpecLean
	Version       layout.Version `json:"version"`
	Objects       []leanObj      `json:"objects"`
	Deltas        []leanDlt      `json:"deltas"`
	ManifestDelta *DeltaRef      `json:"manifest_delta,omitempty"`
	AllObjects    BlobRef        `json:"all_objects,omitzero"`
	Packs         []leanPack     `json:"packs,omitempty"`
}

// leanObj is the stored object of the content of entry E.
type leanObj struct {
	E          int           `json:"e"`
	Stored     digest.Digest `json:"s"`
	StoredSize int64         `json:"z"`
}

// leanDlt is a delta to the content of entry E from content F; W, when
// set, is 1 + the entry whose content is the second base.
type leanDlt struct {
	E      int           `json:"e"`
	From   digest.Digest `json:"f"`
	With   int           `json:"w,omitempty"`
	Codec  string        `json:"c,omitempty"`
	SHA256 digest.Digest `json:"s"`
	Size   int64         `json:"z"`
}

// leanPack lists its items in stream order: n >= 0 is delta n of the list
// (wire order), n < 0 the raw content of entry -n-1.
type leanPack struct {
	SHA256 digest.Digest `json:"s"`
	Size   int64         `json:"z"`
	Codec  string        `json:"c,omitempty"`
	Items  []int         `json:"items"`
}

// leanObjects is the spec 2 document AllObjects pins.
type leanObjects struct {
	Type    string         `json:"type"` // "objects"
	Spec    int            `json:"spec"`
	Version layout.Version `json:"version"`
	Objects []leanObj      `json:"objects"`
}

// Lean reports whether dl still waits for Resolve.
func (dl *Delivery) Lean() bool { return dl.lean != nil }

// Resolve expands a spec 2 list with the contents of its version's
// manifest and validates the result as a spec 1 list is; a spec 1 list is
// left as it is. It must run before the list is used for planning.
func (dl *Delivery) Resolve(c Contents) error {
	l := dl.lean
	if l == nil {
		return nil
	}
	objs, err := expandObjects(l.Objects, c)
	if err != nil {
		return err
	}
	var deltas []DeltaRef
	if l.ManifestDelta != nil {
		deltas = append(deltas, *l.ManifestDelta)
	}
	wire := make([]DeltaRef, len(l.Deltas))
	e := 0
	for i, d := range l.Deltas {
		e += d.E
		to, _, ok := c(e)
		if !ok || d.E < 0 {
			return fmt.Errorf("delivery delta %d: entry %d is no file: %w", i, e, errdefs.ErrInvalidArgument)
		}
		r := DeltaRef{From: d.From, To: to, Codec: d.Codec, SHA256: d.SHA256, Size: d.Size}
		if d.With > 0 {
			if r.With, _, ok = c(d.With - 1); !ok {
				return fmt.Errorf("delivery delta %d: second base entry %d is no file: %w", i, d.With-1, errdefs.ErrInvalidArgument)
			}
		}
		wire[i] = r
	}
	deltas = append(deltas, wire...)
	packs := make([]Pack, len(l.Packs))
	for k, lp := range l.Packs {
		p := Pack{SHA256: lp.SHA256, Size: lp.Size, Codec: lp.Codec, Items: make([]PackItem, len(lp.Items))}
		for j, n := range lp.Items {
			switch {
			case n >= 0 && n < len(wire):
				p.Items[j] = PackItem{SHA256: wire[n].SHA256, Size: wire[n].Size}
			case n < 0:
				d, size, ok := c(-n - 1)
				if !ok {
					return fmt.Errorf("delivery pack %s: item %d: entry %d is no file: %w", lp.SHA256, j, -n-1, errdefs.ErrInvalidArgument)
				}
				p.Items[j] = PackItem{SHA256: d, Size: size}
			default:
				return fmt.Errorf("delivery pack %s: item %d: no delta %d: %w", lp.SHA256, j, n, errdefs.ErrInvalidArgument)
			}
		}
		packs[k] = p
	}
	full := &Delivery{Type: l.Type, Spec: l.Spec, Version: l.Version, Objects: objs, Deltas: deltas, AllObjects: l.AllObjects, Packs: packs}
	full.Sort()
	if err := full.validate(); err != nil {
		return err
	}
	*dl = *full
	return nil
}

func expandObjects(lo []leanObj, c Contents) ([]BlobRef, error) {
	objs := make([]BlobRef, len(lo))
	e := 0
	for i, o := range lo {
		e += o.E
		d, size, ok := c(e)
		if !ok || (i > 0 && o.E <= 0) || o.E < 0 {
			return nil, fmt.Errorf("delivery object %d: entry %d is no file or out of order: %w", i, e, errdefs.ErrInvalidArgument)
		}
		objs[i] = BlobRef{SHA256: d, Size: size, Stored: o.Stored, StoredSize: o.StoredSize}
	}
	return objs, nil
}

// ResolveObjects is ParseObjects for a spec 2 object list, which names
// contents by entry as the lean delivery list does.
func resolveObjects(l *leanObjects, c Contents) ([]BlobRef, error) {
	objs, err := expandObjects(l.Objects, c)
	if err != nil {
		return nil, err
	}
	sortObjects(objs)
	return objs, checkObjects(objs)
}

// EncodeLean writes dl (a complete, sorted spec 1 list for the version
// whose contents firstEntry numbers) as a spec 2 document. firstEntry
// maps each content of the version to the first manifest entry holding
// it; manifestDigest is the content the list's manifest delta (if any)
// produces.
func EncodeLean(dl *Delivery, firstEntry map[digest.Digest]int, manifestDigest digest.Digest) ([]byte, error) {
	l := leanDelivery{Type: "delivery", Spec: DeliverySpecLean, Version: dl.Version, AllObjects: dl.AllObjects}
	var err error
	if l.Objects, err = leanObjectsOf(dl.Objects, firstEntry); err != nil {
		return nil, err
	}
	type at struct {
		e int
		d DeltaRef
	}
	var ats []at
	for _, d := range dl.Deltas {
		if d.To == manifestDigest {
			d := d
			l.ManifestDelta = &d
			continue
		}
		e, ok := firstEntry[d.To]
		if !ok {
			return nil, fmt.Errorf("lean delivery: delta to %s: no such content", d.To)
		}
		ats = append(ats, at{e, d})
	}
	sortBy(ats, func(a at) int { return a.e })
	deltaAt := map[digest.Digest]int{}
	prev := 0
	for _, a := range ats {
		d := a.d
		ld := leanDlt{E: a.e - prev, From: d.From, Codec: d.Codec, SHA256: d.SHA256, Size: d.Size}
		if !d.With.IsZero() {
			w, ok := firstEntry[d.With]
			if !ok {
				return nil, fmt.Errorf("lean delivery: second base %s: no such content", d.With)
			}
			ld.With = w + 1
		}
		prev = a.e
		if _, dup := deltaAt[d.SHA256]; !dup {
			deltaAt[d.SHA256] = len(l.Deltas)
		}
		l.Deltas = append(l.Deltas, ld)
	}
	if l.Deltas == nil {
		l.Deltas = []leanDlt{}
	}
	for _, p := range dl.Packs {
		lp := leanPack{SHA256: p.SHA256, Size: p.Size, Codec: p.Codec, Items: make([]int, len(p.Items))}
		for j, it := range p.Items {
			if n, ok := deltaAt[it.SHA256]; ok {
				lp.Items[j] = n
			} else if e, ok := firstEntry[it.SHA256]; ok {
				lp.Items[j] = -e - 1
			} else {
				return nil, fmt.Errorf("lean delivery: pack %s item %s is neither a delta nor a content", p.SHA256, it.SHA256)
			}
		}
		l.Packs = append(l.Packs, lp)
	}
	return jsonCompact(l)
}

// EncodeLeanObjects writes the full object list of version v as a spec 2
// document.
func EncodeLeanObjects(v layout.Version, objs []BlobRef, firstEntry map[digest.Digest]int) ([]byte, error) {
	lo, err := leanObjectsOf(objs, firstEntry)
	if err != nil {
		return nil, err
	}
	return jsonCompact(leanObjects{Type: "objects", Spec: DeliverySpecLean, Version: v, Objects: lo})
}

// leanObjectsOf lists objects by entry, in entry order, as gaps.
func leanObjectsOf(objs []BlobRef, firstEntry map[digest.Digest]int) ([]leanObj, error) {
	type at struct {
		e int
		o *BlobRef
	}
	ats := make([]at, 0, len(objs))
	for i := range objs {
		e, ok := firstEntry[objs[i].SHA256]
		if !ok {
			return nil, fmt.Errorf("lean delivery: object %s: no such content", objs[i].SHA256)
		}
		ats = append(ats, at{e, &objs[i]})
	}
	sortBy(ats, func(a at) int { return a.e })
	out := make([]leanObj, len(ats))
	prev := 0
	for i, a := range ats {
		out[i] = leanObj{E: a.e - prev, Stored: a.o.Stored, StoredSize: a.o.StoredSize}
		prev = a.e
	}
	return out, nil
}
