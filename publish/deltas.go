package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/delta/deflate"
	"laptop.org/upgrade/delta/elf"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// minDeltaSize: below this a file is so small that its object (in a pack)
// costs about as much as a delta.
const minDeltaSize = 64

// keepRatio: a delta is published only when it is at most this fraction of
// the compressed object, so that fetching it is clearly worth the CPU.
const keepRatio = 0.9

// cliMinSize: with Options.Best, new contents at least this large get their
// delta from the zstd command when it is installed (smaller ones gain
// little from it and would cost a process each).
const cliMinSize = 64 << 10

// pair is one delta to make: old content from -> new content to, with an
// optional second base (a content of the new tree, see companions).
type pair struct {
	from, to digest.Digest
	fromSize int64
	path     string // a path of the new tree holding `to`
	with     *companion
}

// makeDeltas publishes deltas to the new contents: from what the previous
// versions had at the same path; for a new path, from a file of the newest
// version whose name differs only in its digits (tables15.0.0.go ->
// tables17.0.0.go); and for large files, with a second base when another
// new file shares much of their content (companions.go).
func makeDeltas(ctx context.Context, st store, tree string, m *manifest.Manifest, prev []*manifest.Manifest, dl *repo.Delivery, res *Result, o Options) error {
	logf := o.Logf
	stored := map[digest.Digest]int64{}
	for _, o := range dl.Objects {
		stored[o.SHA256] = o.StoredSize
	}
	pairs := deltaPairs(m, prev)
	if len(prev) > 0 {
		comps, err := chooseCompanions(ctx, st, tree, m, prev[0], pairs, logf)
		if err != nil {
			return err
		}
		for i := range pairs {
			if c := comps[pairs[i].to]; c != nil && pairs[i].from == c.from {
				pairs[i].with = c
			}
		}
	}
	zstd := ""
	if o.Best {
		zstd = delta.CLI()
	}
	refs := make([]*repo.DeltaRef, len(pairs))
	err := parallel(ctx, len(pairs), func(i int) error {
		p := pairs[i]
		ref := repo.DeltaRef{From: p.from, To: p.to}
		if p.with != nil {
			ref.With = p.with.with
		}
		if found, keep, err := reuseDelta(st, &ref, stored[p.to]); found || err != nil {
			if keep {
				refs[i] = &ref
			}
			return err
		}
		bases := [][]byte{}
		old, err := st.readObject(p.from, p.fromSize)
		if err != nil {
			return err
		}
		bases = append(bases, old)
		if p.with != nil {
			bases = append(bases, p.with.content)
		}
		nb, err := os.ReadFile(filepath.Join(tree, filepath.FromSlash(p.path)))
		if err != nil {
			return err
		}
		var out []byte
		if p.with == nil {
			out, ref.Codec, err = DeltaOf(zstd, old, nb)
		} else {
			out, err = createDelta(zstd, bases, nb)
		}
		if err != nil {
			return err
		}
		if float64(len(out)) > keepRatio*float64(stored[p.to]) {
			return nil
		}
		d, n, err := st.put(ref.Path(), func(w io.Writer) error { _, err := w.Write(out); return err })
		if err != nil {
			return err
		}
		ref.SHA256, ref.Size = d, n
		refs[i] = &ref
		mu.Lock()
		res.NewDeltas++
		res.StoredBytes += n
		mu.Unlock()
		return nil
	})
	for _, r := range refs {
		if r != nil {
			dl.Deltas = append(dl.Deltas, *r)
		}
	}
	logf("deltas: %d candidates, %d kept", len(pairs), len(dl.Deltas))
	return err
}

// reuseDelta finds a delta an earlier run stored for ref's pair (a
// codec's first: it was stored only when it was the smallest) and fills
// in ref when it is worth publishing (keep).
func reuseDelta(st store, ref *repo.DeltaRef, objSize int64) (found, keep bool, err error) {
	codecs := []string{repo.CodecELFMap, repo.CodecELF, repo.CodecDeflate, ""}
	if !ref.With.IsZero() {
		codecs = codecs[1:]
	}
	for _, codec := range codecs {
		ref.Codec = codec
		d, n, ok, err := st.stat(ref.Path())
		if err != nil || ok {
			keep = ok && float64(n) <= keepRatio*float64(objSize)
			ref.SHA256, ref.Size = d, n
			return ok, keep, err
		}
	}
	ref.Codec = ""
	return false, false, nil
}

// createDelta makes a plain delta from bases to nb, with the zstd command
// for large contents when zstd names it.
func createDelta(zstd string, bases [][]byte, nb []byte) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	if zstd != "" && len(nb) >= cliMinSize {
		err = createCLI(zstd, bases, nb, &buf)
	} else {
		err = delta.Create(delta.Dict(bases...), bytes.NewReader(nb), &buf)
	}
	return buf.Bytes(), err
}

// DeltaOf is the delta the publisher stores from old to nb (one base) and
// its codec ("" for a plain delta): the plain delta, made by the zstd
// command for large contents when zstd names it (Options.Best), unless a
// codec's is smaller (deflate), or clearly smaller (the ELF codecs:
// elfGain). bench/codecbench measures what it returns.
func DeltaOf(zstd string, old, nb []byte) ([]byte, string, error) {
	out, err := createDelta(zstd, [][]byte{old}, nb)
	if err != nil {
		return nil, "", err
	}
	if b, ok := deflateDelta(old, nb, len(out)); ok {
		return b, repo.CodecDeflate, nil
	}
	if b, codec, ok := elfCodecDelta(zstd, old, nb, len(out)); ok {
		return b, codec, nil
	}
	return out, "", nil
}

// elfGain: a delta of ELF files through a codec is kept only when it is at
// least this much smaller than the plain one, since a client pays one or
// two instruction sweeps to apply it.
const elfGain = 0.95

// cliReach: the zstd command's deltas of executables are 10-16 % smaller
// than the Go encoder's (delta.CLI), so a codec's delta that the Go
// encoder makes up to this much larger than the plain one (the command's,
// with --best) may still win once the command makes it.
const cliReach = 1.2

// elfCodec is one ELF codec's delta before its encoding: the header to
// prepend, the base and the content the delta goes between.
type elfCodec struct {
	name         string
	head         []byte
	base, target []byte
	size         int // of head and the Go encoder's delta
	delta        []byte
}

// elfCodecDelta makes the x86-64 ELF codecs' deltas (repo.CodecELF: of the
// encoded files; repo.CodecELFMap: the new file against the old one
// projected through an address map) with the Go encoder, and, with zstd
// set, the smaller one again with the command when it is within reach of
// plain. It returns the smallest when it is clearly smaller than plain.
// Only the most promising is made twice: making every executable's delta
// with the command for both codecs would triple the publish time.
func elfCodecDelta(zstd string, old, nb []byte, plain int) ([]byte, string, bool) {
	if !elf.Is(old) || !elf.Is(nb) {
		return nil, "", false
	}
	var best *elfCodec
	for _, c := range elfCodecs(old, nb) {
		d, err := createDelta("", [][]byte{c.base}, c.target)
		if err != nil {
			continue
		}
		c.delta, c.size = d, len(c.head)+len(d)
		if best == nil || c.size < best.size {
			best = c
		}
	}
	if best == nil {
		return nil, "", false
	}
	if zstd != "" && len(best.target) >= cliMinSize && float64(best.size) <= cliReach*float64(plain) {
		if d, err := createDelta(zstd, [][]byte{best.base}, best.target); err == nil && len(d) < len(best.delta) {
			best.delta, best.size = d, len(best.head)+len(d)
		}
	}
	if float64(best.size) > elfGain*float64(plain) {
		return nil, "", false
	}
	return append(append([]byte{}, best.head...), best.delta...), best.name, true
}

// elfCodecs prepares the ELF codecs that apply to old and nb (those whose
// transform fails are left out).
func elfCodecs(old, nb []byte) []*elfCodec {
	var cs []*elfCodec
	if eo, en, err := elf.Prepare(old, nb); err == nil {
		cs = append(cs, &elfCodec{name: repo.CodecELF, base: eo, target: en})
	}
	if h, base, err := elf.PrepareMap(old, nb); err == nil {
		cs = append(cs, &elfCodec{name: repo.CodecELFMap, head: h, base: base, target: nb})
	}
	return cs
}

// deflateDelta makes a deflate-aware delta (repo.CodecDeflate) when both
// files are gzip or zlib and it is smaller than the plain delta's size;
// any file it cannot reproduce exactly keeps the plain delta.
func deflateDelta(old, nb []byte, plain int) ([]byte, bool) {
	if !deflate.Is(old) || !deflate.Is(nb) {
		return nil, false
	}
	var b bytes.Buffer
	if err := deflate.CreateDelta(old, nb, &b); err != nil || b.Len() >= plain {
		return nil, false
	}
	return b.Bytes(), true
}

// createCLI writes the dictionary to a temp file for the zstd command.
func createCLI(zstd string, bases [][]byte, nb []byte, w io.Writer) error {
	f, err := os.CreateTemp("", "delta-dict-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	for i, b := range bases {
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		if i < len(bases)-1 {
			if _, err := f.Write(make([]byte, delta.DictSize(int64(len(b)), 0)-int64(len(b)))); err != nil {
				f.Close()
				return err
			}
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return delta.CreateCLI(zstd, f.Name(), nb, w)
}

// deltaPairs lists the deltas worth trying: for every new content, from
// each content its path had in the previous versions, and for a path the
// newest version lacks, from its closest relative by name.
func deltaPairs(m *manifest.Manifest, prev []*manifest.Manifest) []pair {
	seen := map[[2]digest.Digest]bool{}
	var pairs []pair
	add := func(old, e *manifest.Entry) {
		k := [2]digest.Digest{old.SHA256, e.SHA256}
		if !seen[k] {
			seen[k] = true
			pairs = append(pairs, pair{from: old.SHA256, to: e.SHA256, fromSize: old.Size, path: e.Path})
		}
	}
	usable := func(old, e *manifest.Entry) bool {
		return old != nil && old.Type == manifest.File && old.SHA256 != e.SHA256 && old.Size > 0 && old.Size <= delta.MaxBase
	}
	var family map[string][]*manifest.Entry
	if len(prev) > 0 {
		family = nameFamilies(prev[0])
	}
	for _, pm := range prev {
		for i := range m.Entries {
			e := &m.Entries[i]
			if e.Type != manifest.File || e.Link != "" || e.Size < minDeltaSize {
				continue
			}
			if old := pm.Find(e.Path); usable(old, e) {
				add(old, e)
			} else if pm == prev[0] && old == nil {
				if rel := relative(family, e); usable(rel, e) {
					add(rel, e)
				}
			}
		}
	}
	return pairs
}

// familyKey is a path with every run of digits replaced by '#'.
func familyKey(p string) string {
	var b strings.Builder
	digits := false
	for _, r := range p {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String()
}

// nameFamilies groups the files of m whose names have digits by family
// key (only those can have a relative that differs from them).
func nameFamilies(m *manifest.Manifest) map[string][]*manifest.Entry {
	out := map[string][]*manifest.Entry{}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type == manifest.File && e.Link == "" && strings.ContainsAny(path.Base(e.Path), "0123456789") {
			k := familyKey(e.Path)
			out[k] = append(out[k], e)
		}
	}
	return out
}

// relative picks the member of e's name family closest to e in size, if
// their sizes are within a factor of 4.
func relative(family map[string][]*manifest.Entry, e *manifest.Entry) *manifest.Entry {
	var best *manifest.Entry
	dist := func(o *manifest.Entry) int64 {
		if d := o.Size - e.Size; d >= 0 {
			return d
		} else {
			return -d
		}
	}
	for _, o := range family[familyKey(e.Path)] {
		if o.Size*4 >= e.Size && e.Size*4 >= o.Size && (best == nil || dist(o) < dist(best)) {
			best = o
		}
	}
	return best
}

func jsonCompact(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
}
