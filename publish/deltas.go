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
		out, err := createDelta(zstd, bases, nb)
		if err != nil {
			return err
		}
		if p.with == nil {
			if b, ok := deflateDelta(old, nb, len(out)); ok {
				out, ref.Codec = b, repo.CodecDeflate
			}
			plain := len(out)
			if b, ok := elfDelta(old, nb, plain); ok {
				out, ref.Codec = b, repo.CodecELF
			}
			if b, ok := elfMapDelta(old, nb, plain); ok && len(b) < len(out) {
				out, ref.Codec = b, repo.CodecELFMap
			}
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

// elfGain: a delta of encoded ELF files is kept only when it is at least
// this much smaller than the best other one, since a client pays two
// instruction sweeps to apply it.
const elfGain = 0.95

// elfDelta makes a delta of encoded x86-64 ELF files (repo.CodecELF) when
// both files are such and the new one decodes back exactly, and returns
// it when it is clearly smaller than best. It always uses the Go encoder:
// with --best, making every executable's delta twice with the zstd
// command would double the publish time.
func elfDelta(old, nb []byte, best int) ([]byte, bool) {
	if !elf.Is(old) || !elf.Is(nb) {
		return nil, false
	}
	eo, en, err := elf.Prepare(old, nb)
	if err != nil {
		return nil, false
	}
	d, err := createDelta("", [][]byte{eo}, en)
	if err != nil || float64(len(d)) > elfGain*float64(best) {
		return nil, false
	}
	return d, true
}

// elfMapDelta makes a map delta of x86-64 ELF files (repo.CodecELFMap)
// and returns it when it is clearly smaller than best (elfGain: the
// client pays an instruction sweep to project its base).
func elfMapDelta(old, nb []byte, best int) ([]byte, bool) {
	if !elf.Is(old) || !elf.Is(nb) {
		return nil, false
	}
	h, base, err := elf.PrepareMap(old, nb)
	if err != nil {
		return nil, false
	}
	d, err := createDelta("", [][]byte{base}, nb)
	if err != nil || float64(len(h)+len(d)) > elfGain*float64(best) {
		return nil, false
	}
	return append(h, d...), true
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
