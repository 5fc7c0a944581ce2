package publish

import (
	"bytes"
	"cmp"
	"context"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/manifest"
)

// Companions (second bases). Statically linked executables of one release
// share most of their new code: Go 1.27's cmd/vet and cmd/fix both carry the
// new runtime, the analysis framework and more. A delta of the new vet
// against the old vet must spell out all of that new code again; against
// the old vet *and the new fix* (which the client places first) it mostly
// refers to fix, which often halves it (bench/manual.md, "Figures behind
// design choices").
const (
	companionMin   = 1 << 20 // only files this large are worth the search
	companionMax   = 64      // files considered (the search is quadratic)
	companionDepth = 4       // longest chain of second bases
	companionGain  = 0.01    // estimated share of the file a candidate must add
	companionTries = 3       // best-ranked candidates tried for real
	companionKeep  = 0.95    // keep one when the delta shrinks at least this much
)

// companion is the second base chosen for a new content.
type companion struct {
	from    digest.Digest // the first base it was chosen for
	with    digest.Digest
	content []byte
	depth   int
}

type bigFile struct {
	e      *manifest.Entry
	old    *manifest.Entry // same path in the newest previous version
	chunks map[uint64]int32
	depth  int
	comp   *companion
}

// chooseCompanions picks, for each large new content that has a delta from
// the newest version, a larger new content to serve as second base when
// that makes the delta clearly smaller. Candidates are ranked by the bytes
// of content-defined chunks they share with the file and its old version
// lacks; the best is confirmed by making both deltas with the Go encoder
// (fast; the zstd command, used for the published delta, ranks the same).
func chooseCompanions(ctx context.Context, st store, tree string, m, newest *manifest.Manifest, pairs []pair, logf func(string, ...any)) (map[digest.Digest]*companion, error) {
	big, seed, err := bigFiles(tree, m, newest, pairs)
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, len(big), func(i int) error {
		comp, err := companionFor(st, tree, big, i, seed, logf)
		if comp != nil {
			mu.Lock()
			big[i].comp = comp
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return companionChains(big), nil
}

// bigFiles lists the distinct large contents of m, largest first, each with
// its old version (the same path in newest, when a delta pair has it) and
// its chunks (cut with the seed returned).
func bigFiles(tree string, m, newest *manifest.Manifest, pairs []pair) ([]*bigFile, maphash.Seed, error) {
	fromNewest := map[digest.Digest]*manifest.Entry{}
	for _, p := range pairs {
		if old := newest.Find(p.path); old != nil && old.SHA256 == p.from {
			fromNewest[p.to] = old
		}
	}
	var big []*bigFile
	seen := map[digest.Digest]bool{}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type == manifest.File && e.Link == "" && e.Size >= companionMin && !seen[e.SHA256] {
			seen[e.SHA256] = true
			big = append(big, &bigFile{e: e, old: fromNewest[e.SHA256]})
		}
	}
	slices.SortStableFunc(big, func(a, b *bigFile) int { return cmp.Compare(b.e.Size, a.e.Size) })
	if len(big) > companionMax {
		big = big[:companionMax]
	}
	seed := maphash.MakeSeed()
	for _, b := range big {
		nb, err := os.ReadFile(filepath.Join(tree, filepath.FromSlash(b.e.Path)))
		if err != nil {
			return nil, seed, err
		}
		b.chunks = chunkSet(nb, seed)
	}
	return big, seed, nil
}

// companionFor picks big[i]'s companion among the larger files before it,
// or returns nil: candidates ranked by the chunks they share with it that
// its old version lacks, the best confirmed by making the deltas.
func companionFor(st store, tree string, big []*bigFile, i int, seed maphash.Seed, logf func(string, ...any)) (*companion, error) {
	b := big[i]
	if b.old == nil {
		return nil, nil
	}
	old, err := st.readObject(b.old.SHA256, b.old.Size)
	if err != nil {
		return nil, err
	}
	cands := companionCandidates(big, i, chunkSet(old, seed))
	if len(cands) == 0 {
		return nil, nil
	}
	nb, err := os.ReadFile(filepath.Join(tree, filepath.FromSlash(b.e.Path)))
	if err != nil {
		return nil, err
	}
	var plain bytes.Buffer
	if err := delta.Create(old, bytes.NewReader(nb), &plain); err != nil {
		return nil, err
	}
	best, bestLen := -1, int(companionKeep*float64(plain.Len()))
	var bestContent []byte
	for _, cd := range cands[:min(len(cands), companionTries)] {
		c := big[cd.j]
		cb, err := os.ReadFile(filepath.Join(tree, filepath.FromSlash(c.e.Path)))
		if err != nil {
			return nil, err
		}
		var with bytes.Buffer
		if err := delta.Create(delta.Dict(old, cb), bytes.NewReader(nb), &with); err != nil {
			return nil, err
		}
		logf("companion for %s: %s (shares %d KiB) makes the delta %d bytes, %d without", b.e.Path, c.e.Path, cd.gain>>10, with.Len(), plain.Len())
		if with.Len() <= bestLen {
			best, bestLen, bestContent = cd.j, with.Len(), cb
		}
	}
	if best < 0 {
		return nil, nil
	}
	return &companion{from: b.old.SHA256, with: big[best].e.SHA256, content: bestContent}, nil
}

// candidate is a possible companion: big[j], sharing gain bytes of chunks.
type candidate struct {
	j    int
	gain int64
}

// companionCandidates ranks the files before big[i] (larger ones) by the
// bytes of chunks they share with it and its old version lacks, keeping
// those that share enough and fit a delta's dictionary.
func companionCandidates(big []*bigFile, i int, oldChunks map[uint64]int32) []candidate {
	b := big[i]
	var cands []candidate
	for j := 0; j < i; j++ {
		c := big[j]
		if delta.DictSize(b.old.Size, c.e.Size) > delta.MaxBase {
			continue
		}
		var gain int64
		for h, n := range b.chunks {
			if _, ok := c.chunks[h]; ok {
				if _, had := oldChunks[h]; !had {
					gain += int64(n)
				}
			}
		}
		if float64(gain) >= companionGain*float64(b.e.Size) {
			cands = append(cands, candidate{j, gain})
		}
	}
	slices.SortStableFunc(cands, func(x, y candidate) int { return cmp.Compare(y.gain, x.gain) })
	return cands
}

// companionChains keeps the companions whose chain of second bases stays
// within companionDepth: a companion that itself has one adds a level on
// the client.
func companionChains(big []*bigFile) map[digest.Digest]*companion {
	out := map[digest.Digest]*companion{}
	for _, b := range big {
		if b.comp == nil {
			continue
		}
		for _, c := range big {
			if c.e.SHA256 == b.comp.with {
				b.depth = c.depth + 1
			}
		}
		if b.depth <= companionDepth {
			out[b.e.SHA256] = b.comp
		} else {
			b.depth = 0
		}
	}
	return out
}

// chunkSet cuts b at content-defined boundaries (a gear hash, ~512-byte
// chunks) and returns each chunk's hash with its length: shared chunks
// survive the shifts that code changes cause in executables.
func chunkSet(b []byte, seed maphash.Seed) map[uint64]int32 {
	out := make(map[uint64]int32, len(b)/512+1)
	var h uint64
	start := 0
	for i, c := range b {
		h = h<<1 + gear[c]
		if (h&0x1ff == 0 && i-start >= 64) || i-start >= 8192 || i == len(b)-1 {
			out[maphash.Bytes(seed, b[start:i+1])] = int32(i + 1 - start)
			start = i + 1
		}
	}
	return out
}

// gear is a fixed table of random 64-bit values (splitmix64 of 0..255).
var gear = func() (t [256]uint64) {
	x := uint64(0x9e3779b97f4a7c15)
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return
}()
