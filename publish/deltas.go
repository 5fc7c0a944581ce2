package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// minDeltaSize: below this, a delta saves too little to be worth a request.
const minDeltaSize = 4 << 10

// keepRatio: a delta is published only when it is at most this fraction of
// the compressed object, so that fetching it is clearly worth the CPU.
const keepRatio = 0.9

type pair struct {
	from, to digest.Digest
	fromSize int64
	path     string // a path of the new tree holding `to`
}

// makeDeltas publishes deltas from the contents the previous versions had at
// each path to the new content at that path.
func makeDeltas(ctx context.Context, st store, tree string, m *manifest.Manifest, prev []*manifest.Manifest, dl *repo.Delivery, res *Result, logf func(string, ...any)) error {
	stored := map[digest.Digest]int64{}
	for _, o := range dl.Objects {
		stored[o.SHA256] = o.StoredSize
	}
	seen := map[[2]digest.Digest]bool{}
	var pairs []pair
	for _, pm := range prev {
		for i := range m.Entries {
			e := &m.Entries[i]
			if e.Type != manifest.File || e.Link != "" || e.Size < minDeltaSize {
				continue
			}
			old := pm.Find(e.Path)
			if old == nil || old.Type != manifest.File || old.SHA256 == e.SHA256 || old.Size == 0 || old.Size > delta.MaxBase {
				continue
			}
			k := [2]digest.Digest{old.SHA256, e.SHA256}
			if !seen[k] {
				seen[k] = true
				pairs = append(pairs, pair{from: old.SHA256, to: e.SHA256, fromSize: old.Size, path: e.Path})
			}
		}
	}
	refs := make([]*repo.DeltaRef, len(pairs))
	err := parallel(ctx, len(pairs), func(i int) error {
		p := pairs[i]
		rel := repo.DeltaPath(p.from, p.to)
		if d, n, ok, err := st.stat(rel); err != nil || ok {
			if ok && float64(n) <= keepRatio*float64(stored[p.to]) {
				refs[i] = &repo.DeltaRef{From: p.from, To: p.to, SHA256: d, Size: n}
			}
			return err
		}
		old, err := st.readObject(p.from, p.fromSize)
		if err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(tree, filepath.FromSlash(p.path)))
		if err != nil {
			return err
		}
		defer f.Close()
		var buf bytes.Buffer
		if err := delta.Create(old, f, &buf); err != nil {
			return err
		}
		if float64(buf.Len()) > keepRatio*float64(stored[p.to]) {
			return nil
		}
		d, n, err := st.put(rel, func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err })
		if err != nil {
			return err
		}
		refs[i] = &repo.DeltaRef{From: p.from, To: p.to, SHA256: d, Size: n}
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

func jsonCompact(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
}
