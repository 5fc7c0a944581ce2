package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
)

// metaBytes is what one upgrade of ours downloaded besides content: the
// TUF metadata (and whatever else is not a blob), the manifest (whole or
// as a delta from the running version's) and the delivery list (with the
// full object list, when the client needed it).
type metaBytes struct {
	Index, Manifest, Delivery int64
}

// classifyMeta sorts the paths the client fetched (counter.Paths, relative
// to the server's root) using the newest version's references in the
// repository's targets; blobs that are neither are content.
func (o *ours) classifyMeta(paths map[string]int64) metaBytes {
	m0, err := publish.LoadMeta(o.repo)
	check(err)
	x, err := m0.Index()
	check(err)
	v := x.Latest()
	kind := map[string]*int64{}
	var m metaBytes
	mh := v.Manifest.SHA256.String()
	for _, ref := range []struct {
		r repo.BlobRef
		n *int64
	}{{v.Manifest, &m.Manifest}, {v.Delivery, &m.Delivery}} {
		kind[repo.ObjectPath(ref.r.SHA256)] = ref.n
	}
	if db, err := readObject(o.repo, v.Delivery); err == nil {
		if dl, err := repo.ParseDelivery(db, v.Version); err == nil && !dl.AllObjects.SHA256.IsZero() {
			kind[repo.ObjectPath(dl.AllObjects.SHA256)] = &m.Delivery
		}
	}
	for p, n := range paths {
		p = strings.TrimPrefix(p, "/repo/")
		switch {
		case kind[p] != nil:
			*kind[p] += n
		case strings.HasPrefix(p, "deltas/") && strings.Contains(p, "-"+mh):
			m.Manifest += n
		case !strings.HasPrefix(p, "objects/") && !strings.HasPrefix(p, "deltas/") && !strings.HasPrefix(p, "packs/"):
			m.Index += n
		}
	}
	return m
}

// readObject reads and decompresses a document stored as an object.
func readObject(repoDir string, r repo.BlobRef) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(repoDir, repo.ObjectPath(r.SHA256)))
	if err != nil {
		return nil, err
	}
	d, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.DecodeAll(b, nil)
}

// printMeta prints the medians of our metadata bytes, and their share of
// the whole download (median bytes ob).
func printMeta(pair string, ours *system, ob int64) {
	if len(ours.Meta) == 0 {
		return
	}
	var idx, man, del []float64
	for _, m := range ours.Meta {
		idx, man, del = append(idx, float64(m.Index)), append(man, float64(m.Manifest)), append(del, float64(m.Delivery))
	}
	line := func(name string, v float64, unit string) { fmt.Printf("BENCH %s %.4g %s\n", name, v, unit) }
	i, m, d := median(idx), median(man), median(del)
	line("meta_index_kb_"+pair, i/1e3, "kB")
	line("meta_manifest_kb_"+pair, m/1e3, "kB")
	line("meta_delivery_kb_"+pair, d/1e3, "kB")
	line("meta_share_"+pair, (i+m+d)/float64(ob), "x")
}
