package publish

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// Packs. A typical update is mostly many small things: hundreds of tiny
// deltas of source files, a thousand new small files of a few packages.
// One by one, each costs a request, a staging file and a commit, and each
// small file compresses alone, without its neighbours' context (figures in
// bench/manual.md, "Figures behind design choices"). A pack is one solid
// zstd stream of such items for clients upgrading from the newest previous
// version: the smallest delta from that version for each changed content,
// and the raw content of each new content that has no delta.
const (
	packItemMax  = 1 << 20 // items this large or larger stay their own blob
	packRawMax   = 4 << 20 // raw bytes per pack: packs unpack in parallel, each decoder holds this much
	packMinItems = 2       // a lone item is better fetched as itself
)

type packItem struct {
	sha  digest.Digest
	path string // where it lands in the new tree (sort key)
	read func() ([]byte, error)
	size int64
}

// makePacks adds packs to dl for clients at version newest.
func makePacks(ctx context.Context, st store, tree string, m, newest *manifest.Manifest, dl *repo.Delivery, res *Result, o Options) error {
	if newest == nil {
		return nil
	}
	had := map[digest.Digest]bool{}
	for i := range newest.Entries {
		if e := &newest.Entries[i]; e.Type == manifest.File {
			had[e.SHA256] = true
		}
	}
	best := map[digest.Digest]*repo.DeltaRef{} // to -> smallest delta from newest
	for i := range dl.Deltas {
		d := &dl.Deltas[i]
		if had[d.From] && d.With.IsZero() && (best[d.To] == nil || d.Size < best[d.To].Size) {
			best[d.To] = d
		}
	}
	var items, lone []packItem
	seen := map[digest.Digest]bool{}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type != manifest.File || e.Link != "" || had[e.SHA256] || seen[e.SHA256] {
			continue
		}
		seen[e.SHA256] = true
		if d := best[e.SHA256]; d != nil {
			if d.Size < packItemMax {
				rel := d.Path()
				items = append(items, packItem{sha: d.SHA256, path: e.Path, size: d.Size,
					read: func() ([]byte, error) { return os.ReadFile(st.path(rel)) }})
			}
			continue
		}
		it := packItem{sha: e.SHA256, path: e.Path, size: e.Size,
			read: func() ([]byte, error) { return os.ReadFile(filepath.Join(tree, filepath.FromSlash(e.Path))) }}
		switch {
		case e.Size < packItemMax:
			items = append(items, it)
		case o.Best && e.Size <= xzLoneMax:
			lone = append(lone, it)
		}
	}
	// Neighbours in the tree are alike (one package's files, one source
	// directory): keep them together in the stream.
	slices.SortStableFunc(items, func(a, b packItem) int { return cmp.Compare(a.path, b.path) })
	var groups [][]packItem
	var raw int64
	for _, it := range items {
		if len(groups) == 0 || raw+it.size > packRawMax {
			groups, raw = append(groups, nil), 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], it)
		raw += it.size
	}
	packs := make([]*repo.Pack, len(groups))
	err := parallel(ctx, len(groups), func(i int) error {
		if len(groups[i]) < packMinItems {
			return nil
		}
		p, added, err := writePack(st, groups[i], o.Best)
		if err != nil {
			return err
		}
		packs[i] = p
		res.addStored(added)
		return nil
	})
	if err == nil {
		var lp []*repo.Pack
		lp, err = loneXZPacks(ctx, st, lone, dl, res)
		packs = append(packs, lp...)
	}
	var n, total int
	for _, p := range packs {
		if p != nil {
			dl.Packs = append(dl.Packs, *p)
			n, total = n+1, total+len(p.Items)
		}
	}
	o.Logf("packs: %d with %d items", n, total)
	return err
}

// addStored counts n bytes a parallel worker added to the repository.
func (r *Result) addStored(n int64) {
	mu.Lock()
	r.StoredBytes += n
	mu.Unlock()
}

// writePack compresses the items as one stream (with best, by the zstd
// command when installed: smaller), stores it under its digest and returns
// its entry and the bytes it added to the repository.
func writePack(st store, items []packItem, best bool) (*repo.Pack, int64, error) {
	var raw bytes.Buffer
	p := &repo.Pack{}
	for _, it := range items {
		b, err := it.read()
		if err != nil {
			return nil, 0, err
		}
		if digest.Of(b) != it.sha || int64(len(b)) != it.size {
			return nil, 0, fmt.Errorf("pack item %s: content changed while publishing", it.path)
		}
		raw.Write(b)
		p.Items = append(p.Items, repo.PackItem{SHA256: it.sha, Size: it.size})
	}
	var z bytes.Buffer
	if zstd := delta.CLI(); best && zstd != "" {
		cmd := exec.Command(zstd, "-q", "-c", fmt.Sprintf("-%d", delta.CLILevel), "--zstd=wlog=23",
			fmt.Sprintf("--stream-size=%d", raw.Len()), "-")
		cmd.Stdin, cmd.Stdout = bytes.NewReader(raw.Bytes()), &z
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, 0, fmt.Errorf("zstd: %v: %s", err, stderr.String())
		}
	} else if err := delta.CompressSize(bytes.NewReader(raw.Bytes()), int64(raw.Len()), &z); err != nil {
		return nil, 0, err
	}
	stored := z.Bytes()
	if best {
		x, ok, err := smallerXZ(raw.Bytes(), int64(len(stored)))
		if err != nil {
			return nil, 0, err
		}
		if ok {
			stored, p.Codec = x, repo.CodecXZ
		}
	}
	return storePack(st, p, stored)
}

// storePack stores a pack's bytes under their digest and returns its entry
// and the bytes it added to the repository (none if it was there).
func storePack(st store, p *repo.Pack, stored []byte) (*repo.Pack, int64, error) {
	p.SHA256, p.Size = digest.Of(stored), int64(len(stored))
	rel := repo.PackPath(p)
	_, _, existed, err := st.stat(rel)
	if err != nil {
		return nil, 0, err
	}
	if _, _, err := st.put(rel, func(w io.Writer) error { _, err := w.Write(stored); return err }); err != nil {
		return nil, 0, err
	}
	if existed {
		return p, 0, nil
	}
	return p, p.Size, nil
}
