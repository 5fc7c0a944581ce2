package repo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/strictjson"
)

// DeliverySpec is the delivery list format that spells out every digest
// (DeliverySpecLean refers to the manifest instead). Clients read both;
// a publisher writes spec 1 only for clients older than spec 2, which
// refuse a spec 2 list by its number.
const DeliverySpec = 1

// Delivery says how to get each content of one version: the stored object
// for every digest in its manifest, and binary deltas from older contents.
// It is pinned by hash in the signed index, so every size in it is signed.
type Delivery struct {
	Type    string         `json:"type"` // "delivery"
	Spec    int            `json:"spec"`
	Version layout.Version `json:"version"`
	Objects []BlobRef      `json:"objects"` // sorted by SHA256, unique
	Deltas  []DeltaRef     `json:"deltas"`  // sorted by (To, From), unique
	// AllObjects, when set, pins a document listing the object of every
	// content of the version (ParseObjects); Objects then lists only the
	// contents the previous version lacked, which is all a client upgrading
	// from it needs unless its slot drifted. A client fetches the full list
	// only when its plan needs an object the short one lacks (provisioning,
	// drift, an older starting version): 12k objects are ~1 MB of hex
	// digests, 5 % of a Go release upgrade's download.
	AllObjects BlobRef `json:"all_objects,omitzero"`
	// Packs hold many small deltas and objects in one solid stream, for
	// clients upgrading from the previous version (see Pack).
	Packs []Pack `json:"packs,omitempty"`

	lean *leanDelivery // a spec 2 list before Resolve
}

// DeltaRef is a zstd patch that turns content From into content To.
type DeltaRef struct {
	From digest.Digest `json:"from"`
	To   digest.Digest `json:"to"`
	// With is an optional second base: a content of this same version
	// (e.g. another executable that links the same new libraries), which a
	// client places before it applies this delta. The dictionary is From's
	// content padded with zeros to a multiple of 64 KiB, then With's.
	With digest.Digest `json:"with,omitzero"`
	// Codec is how the delta encodes To: "" for a zstd patch of From's
	// bytes, CodecDeflate, CodecELF or CodecELFMap. A client uses only
	// deltas whose codec it knows (KeepDeltaCodecs), so a publisher may add
	// codecs later: older clients fetch those contents as objects or other
	// deltas.
	Codec  string        `json:"codec,omitempty"`
	SHA256 digest.Digest `json:"sha256"` // of the delta file
	Size   int64         `json:"size"`
}

// CodecDeflate marks a delta between the puffs of two gzip or zlib files
// (package delta/deflate): a zstd patch from the puff of From to the puff
// of To, which the client re-encodes into To's exact bytes. A small change
// to a compressed man page rewrites its whole deflate stream, so a plain
// delta of the .gz saves little; between puffs it is a fraction of that.
const CodecDeflate = "deflate"

// CodecELF marks a delta between x86-64 ELF files encoded by package
// delta/elf (PC-relative references to data made absolute, so that code
// that moved does not differ where it refers to data that did not): a
// zstd patch from the encoded From to the encoded To, which the client
// decodes.
const CodecELF = "elfx86"

// CodecELFMap marks a delta between x86-64 ELF files made by package
// delta/elf's map deltas: where From's addresses moved in To (a shift per
// address range), then a zstd patch from From with its references
// rewritten through that map to To's exact bytes. Code that moved
// changes every reference into and out of it; the map predicts most of
// them, which the encoded form of CodecELF does only for references to
// data that stayed put.
const CodecELFMap = "elfmap"

// DeltaCodecs lists the delta codecs this build applies.
func DeltaCodecs() []string { return []string{"", CodecDeflate, CodecELF, CodecELFMap} }

// KeepDeltaCodecs drops the deltas whose codec is not in codecs, so that
// planning never picks one the client cannot apply.
func (dl *Delivery) KeepDeltaCodecs(codecs []string) {
	dl.Deltas = slices.DeleteFunc(dl.Deltas, func(d DeltaRef) bool { return !slices.Contains(codecs, d.Codec) })
}

// validCodec: a codec name becomes part of a path, so it is kept to
// lowercase letters and digits.
func validCodec(c string) bool {
	if len(c) > 16 {
		return false
	}
	for _, r := range c {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// Pack is one file holding several blobs as a single zstd stream (window
// 8 MiB), so that hundreds of small deltas and new small files cost one
// request and compress together: the stream is the items' bytes back to
// back, in order. An item is the raw content of an object (SHA256 is the
// content digest, as in Objects) or a delta file (SHA256 as in Deltas).
// A client fetches a pack when that is cheaper than the items it needs
// one by one, and checks every item's digest as it unpacks.
type Pack struct {
	SHA256 digest.Digest `json:"sha256"` // of the pack file as stored
	Size   int64         `json:"size"`
	// Codec is how the stream is compressed: "" for zstd, or CodecXZ. A
	// client skips a pack whose codec it does not know (it fetches the
	// items some other way), so a publisher may add codecs later.
	Codec string     `json:"codec,omitempty"`
	Items []PackItem `json:"items"`
}

// CodecXZ marks a pack stored as one .xz stream (LZMA2, possibly after the
// x86 branch filter, dictionary at most XZDictMax). LZMA2 with the x86
// filter is 10-15 % smaller than zstd -19 on executables and libraries
// (relative call targets become absolute, so repeated calls match), and
// decodes at ~30 MB/s per core instead of hundreds: worth it on the slow
// links the system is made for, so publishers use it only where it saves
// a clear margin (publish: Options.Best).
const CodecXZ = "xz"

// XZDictMax bounds an xz pack's dictionary, which is what a decoder holds.
const XZDictMax = 8 << 20

// KnownCodec reports whether this client decodes packs of codec c.
func KnownCodec(c string) bool { return c == "" || c == CodecXZ }

// PackItem is one blob inside a pack.
type PackItem struct {
	SHA256 digest.Digest `json:"sha256"`
	Size   int64         `json:"size"`
}

// MaxPackItems bounds a pack's item list (sanity: packs are a few MiB).
const MaxPackItems = 1 << 16

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
	sortObjects(dl.Objects)
	sort.Slice(dl.Deltas, func(i, j int) bool { return deltaLess(dl.Deltas[i], dl.Deltas[j]) })
}

func sortObjects(o []BlobRef) {
	sort.Slice(o, func(i, j int) bool { return less(o[i].SHA256, o[j].SHA256) })
}

// sortBy sorts xs by an integer key, stably.
func sortBy[T any](xs []T, key func(T) int) {
	sort.SliceStable(xs, func(i, j int) bool { return key(xs[i]) < key(xs[j]) })
}

// jsonCompact encodes v on one line, without HTML escapes.
func jsonCompact(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
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

// ParseDelivery decodes and validates a delivery list for version v. A
// spec 2 list is only checked for its type and version here: it needs the
// version's manifest (Resolve) before anything uses it, except its
// manifest delta, which is in Deltas already.
func ParseDelivery(b []byte, v layout.Version) (*Delivery, error) {
	var head struct {
		Spec int `json:"spec"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("delivery: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if head.Spec == DeliverySpecLean {
		var l leanDelivery
		if err := strictjson.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("delivery: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if l.Type != "delivery" || l.Version != v {
			return nil, fmt.Errorf("delivery: type %q version %d, want version %d: %w", l.Type, l.Version, v, errdefs.ErrInvalidArgument)
		}
		dl := &Delivery{Type: l.Type, Spec: l.Spec, Version: l.Version, AllObjects: l.AllObjects, lean: &l}
		if l.ManifestDelta != nil {
			dl.Deltas = []DeltaRef{*l.ManifestDelta}
		}
		return dl, dl.validate()
	}
	var dl Delivery
	if err := strictjson.Unmarshal(b, &dl); err != nil {
		return nil, fmt.Errorf("delivery: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if dl.Type != "delivery" || dl.Spec != DeliverySpec || dl.Version != v {
		return nil, fmt.Errorf("delivery: type %q spec %d version %d, want spec %d or %d, version %d: %w", dl.Type, dl.Spec, dl.Version, DeliverySpec, DeliverySpecLean, v, errdefs.ErrInvalidArgument)
	}
	return &dl, dl.validate()
}

// validate checks an expanded list: sizes, order, codecs, pack bounds.
func (dl *Delivery) validate() error {
	if err := checkObjects(dl.Objects); err != nil {
		return err
	}
	if !dl.AllObjects.SHA256.IsZero() {
		if err := dl.AllObjects.check(); err != nil {
			return fmt.Errorf("delivery object list: %w", err)
		}
	}
	for i, d := range dl.Deltas {
		if d.Size <= 0 || d.Size > MaxBlob || d.From == d.To || d.With == d.To {
			return fmt.Errorf("delivery delta %s-%s: bad size or identity: %w", d.From, d.To, errdefs.ErrInvalidArgument)
		}
		if !validCodec(d.Codec) || (d.Codec != "" && !d.With.IsZero()) {
			return fmt.Errorf("delivery delta %s-%s: codec %q: %w", d.From, d.To, d.Codec, errdefs.ErrInvalidArgument)
		}
		if i > 0 && !deltaLess(dl.Deltas[i-1], d) {
			return fmt.Errorf("delivery deltas unsorted or duplicated at %s-%s: %w", d.From, d.To, errdefs.ErrInvalidArgument)
		}
	}
	for _, p := range dl.Packs {
		if p.Size <= 0 || p.Size > MaxBlob || len(p.Items) == 0 || len(p.Items) > MaxPackItems {
			return fmt.Errorf("delivery pack %s: bad size or item count: %w", p.SHA256, errdefs.ErrInvalidArgument)
		}
		var total int64
		for _, it := range p.Items {
			if it.Size < 0 || it.Size > MaxBlob {
				return fmt.Errorf("delivery pack %s: item %s size %d: %w", p.SHA256, it.SHA256, it.Size, errdefs.ErrInvalidArgument)
			}
			if total += it.Size; total > MaxBlob {
				return fmt.Errorf("delivery pack %s: items too large: %w", p.SHA256, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

func checkObjects(objs []BlobRef) error {
	for i := range objs {
		o := &objs[i]
		if err := o.check(); err != nil {
			return fmt.Errorf("delivery object %s: %w", o.SHA256, err)
		}
		if i > 0 && !less(objs[i-1].SHA256, o.SHA256) {
			return fmt.Errorf("delivery objects unsorted or duplicated at %s: %w", o.SHA256, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// ObjectList is the document AllObjects pins.
type ObjectList struct {
	Type    string         `json:"type"` // "objects"
	Version layout.Version `json:"version"`
	Objects []BlobRef      `json:"objects"` // sorted by SHA256, unique
}

// ParseObjects decodes and validates the object list of version v; c
// resolves a spec 2 list's entries (Contents).
func ParseObjects(b []byte, v layout.Version, c Contents) ([]BlobRef, error) {
	var head struct {
		Spec int `json:"spec"`
	}
	if err := json.Unmarshal(b, &head); err == nil && head.Spec == DeliverySpecLean {
		var l leanObjects
		if err := strictjson.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("object list: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if l.Type != "objects" || l.Version != v {
			return nil, fmt.Errorf("object list: type %q version %d, want version %d: %w", l.Type, l.Version, v, errdefs.ErrInvalidArgument)
		}
		return resolveObjects(&l, c)
	}
	var l ObjectList
	if err := strictjson.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("object list: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if l.Type != "objects" || l.Version != v {
		return nil, fmt.Errorf("object list: type %q version %d, want version %d: %w", l.Type, l.Version, v, errdefs.ErrInvalidArgument)
	}
	if err := checkObjects(l.Objects); err != nil {
		return nil, err
	}
	return l.Objects, nil
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

// Path is where this delta lives: DeltaPath, with the second base's digest
// appended when there is one (the file depends on it), or the codec's name
// when it has one.
func (d *DeltaRef) Path() string {
	if d.Codec != "" {
		t := d.To.String()
		return "deltas/" + t[:2] + "/" + d.From.String() + "-" + t + "." + d.Codec + ".zst"
	}
	if d.With.IsZero() {
		return DeltaPath(d.From, d.To)
	}
	t := d.To.String()
	return "deltas/" + t[:2] + "/" + d.From.String() + "-" + t + "+" + d.With.String() + ".zst"
}

// PackPath is where pack p lives: its stored digest, with the codec's
// file extension.
func PackPath(p *Pack) string {
	if p.Codec == CodecXZ {
		return "packs/" + p.SHA256.Path() + ".xz"
	}
	return "packs/" + p.SHA256.Path() + ".zst"
}
