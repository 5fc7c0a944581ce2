package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// Spec is the manifest format version this code reads and writes.
const Spec = 1

// Header is the first line of a manifest.
type Header struct {
	Type     string         `json:"type"` // always "manifest"
	Spec     int            `json:"spec"`
	Channel  string         `json:"channel"`
	Hardware string         `json:"hardware,omitempty"`
	Version  layout.Version `json:"version"`
	Name     string         `json:"name,omitempty"`
	Created  time.Time      `json:"created"`
	Entries  int            `json:"entries"`
}

// Manifest is a header and its entries sorted by path (bytewise).
type Manifest struct {
	Header
	Entries []Entry
}

// MarshalText writes the one-letter type.
func (t Type) MarshalText() ([]byte, error) { return []byte{byte(t)}, nil }

// UnmarshalText reads a one-letter type.
func (t *Type) UnmarshalText(b []byte) error {
	if len(b) != 1 {
		return fmt.Errorf("type %q: %w", b, errdefs.ErrInvalidArgument)
	}
	*t = Type(b[0])
	return nil
}

// Encode writes the manifest: the header as one JSON line, then one JSON line
// per entry. The bytes are deterministic for a given manifest, so the same
// tree always yields the same manifest digest.
func (m *Manifest) Encode(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	h := m.Header
	h.Type, h.Spec, h.Entries = "manifest", Spec, len(m.Entries)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&h); err != nil {
		return err
	}
	for i := range m.Entries {
		if err := enc.Encode(&m.Entries[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Bytes encodes into memory.
func (m *Manifest) Bytes() []byte {
	var b bytes.Buffer
	if err := m.Encode(&b); err != nil {
		panic(err) // writing to a bytes.Buffer cannot fail
	}
	return b.Bytes()
}

// maxLine bounds one encoded entry: a PATH_MAX path, a PATH_MAX target and
// xattrs, JSON-escaped (up to 6 bytes per byte).
const maxLine = 6*(2*MaxPath+4096) + 1024

// Validate checks the whole tree: each entry (Entry.Check), strictly
// increasing paths (no duplicates), every parent present earlier as a
// directory (so nothing can sit "under" a symlink or a file), and hard-link
// members pointing at an earlier file with the same inode metadata.
func (m *Manifest) Validate(pol Policy) error {
	kinds := make(map[string]Type, len(m.Entries)/4)
	first := make(map[string]int) // path of a link group's first member -> index
	for i := range m.Entries {
		e := &m.Entries[i]
		if err := e.Check(pol); err != nil {
			return err
		}
		if i > 0 && m.Entries[i-1].Path >= e.Path {
			return fmt.Errorf("%s: out of order or duplicate after %s: %w", e.Path, m.Entries[i-1].Path, errdefs.ErrInvalidArgument)
		}
		if p := Parent(e.Path); p != "" {
			if t, ok := kinds[p]; !ok || t != Dir {
				return fmt.Errorf("%s: parent %s is not a directory of this manifest: %w", e.Path, p, errdefs.ErrUnsafePath)
			}
		}
		if e.Type == Dir {
			kinds[e.Path] = Dir
		} else if e.Type == File && e.Link == "" {
			first[e.Path] = i
		}
		if e.Link != "" {
			j, ok := first[e.Link]
			if e.Type != File || !ok || !m.Entries[j].SameInodeMeta(e) {
				return fmt.Errorf("%s: hard link to %s which is not an earlier identical file: %w", e.Path, e.Link, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// Find returns the entry at path, or nil.
func (m *Manifest) Find(path string) *Entry {
	i := sort.Search(len(m.Entries), func(i int) bool { return m.Entries[i].Path >= path })
	if i < len(m.Entries) && m.Entries[i].Path == path {
		return &m.Entries[i]
	}
	return nil
}

// Sort orders entries by path; publishers call it before Encode.
func (m *Manifest) Sort() {
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
}

// ContentSize sums the sizes of distinct file contents (what a full fetch
// would have to materialise).
func (m *Manifest) ContentSize() int64 {
	var n int64
	for i := range m.Entries {
		if e := &m.Entries[i]; e.Type == File && e.Link == "" {
			n += e.Size
		}
	}
	return n
}

// Content is entry i's content digest and size, ok false unless entry i
// is a regular file: what a lean delivery list (repo.DeliverySpecLean)
// refers to by entry number.
func (m *Manifest) Content(i int) (d digest.Digest, size int64, ok bool) {
	if i < 0 || i >= len(m.Entries) || m.Entries[i].Type != File {
		return digest.Zero, 0, false
	}
	return m.Entries[i].SHA256, m.Entries[i].Size, true
}

// FirstEntries maps each file content to the first entry holding it, the
// number a lean delivery list uses for it.
func (m *Manifest) FirstEntries() map[digest.Digest]int {
	first := map[digest.Digest]int{}
	for i := range m.Entries {
		if e := &m.Entries[i]; e.Type == File {
			if _, ok := first[e.SHA256]; !ok {
				first[e.SHA256] = i
			}
		}
	}
	return first
}
