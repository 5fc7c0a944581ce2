package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
)

// openMetadata is TUF's client workflow (5.3-5.6) over the mirrors: walk
// the root chain from the trusted root, keeping every new root in the
// machine's persistent state as soon as it is trusted (5.3.8); take the
// highest valid timestamp any mirror serves; fetch the snapshot and
// targets it pins; keep the timestamp and snapshot as seen for the
// channel. It returns the verified bundle (kept with a slot), the index
// and the mirror of the timestamp.
func openMetadata(ctx context.Context, cfg *Config, f *fetch.Fetcher, exp repo.Expect) ([]byte, *repo.Index, string, error) {
	chain, err := LoadRoots(cfg.Root)
	if err != nil {
		return nil, nil, "", err
	}
	tr := repo.Trust{Legacy: cfg.Keys}
	switch {
	case len(chain) > 0:
		tr.Root = chain[len(chain)-1]
	case cfg.TrustedRoot != nil:
		tr.Root = cfg.TrustedRoot
	}
	var first []byte
	if tr.Root == nil {
		// No root yet: adopt the repository's first root if a key of the
		// format before TUF signed it (the migration).
		if first, _, err = f.Get(ctx, repo.RootPathOf(1), repo.MaxMetaSize, func(b []byte) error {
			_, err := repo.NewVerifier(ctx, tr, exp, b)
			return err
		}); err != nil {
			return nil, nil, "", err
		}
	}
	v, err := repo.NewVerifier(ctx, tr, exp, first)
	if err != nil {
		return nil, nil, "", err
	}
	if err := walkRoots(ctx, cfg, f, v); err != nil {
		return nil, nil, "", err
	}
	ts, mirror, err := f.GetBest(ctx, repo.TimestampPath, repo.MaxMetaSize, func(b []byte) (uint64, error) {
		w, err := repo.NewVerifier(ctx, repo.Trust{Root: v.Root()}, exp, nil)
		if err == nil {
			err = w.UpdateTimestamp(b)
		}
		if err == nil {
			err = w.CheckTimestamp()
		}
		return w.TimestampVersion(), err
	})
	if err != nil {
		return nil, nil, "", err
	}
	if err := v.UpdateTimestamp(ts); err != nil {
		return nil, nil, "", err
	}
	p, n, _ := v.SnapshotMeta()
	if _, _, err := f.Get(ctx, p, sizeOr(n), v.UpdateSnapshot); err != nil {
		return nil, nil, "", err
	}
	p, n, _ = v.TargetsMeta()
	if _, _, err := f.Get(ctx, p, sizeOr(n), v.UpdateTargets); err != nil {
		return nil, nil, "", err
	}
	idx, err := v.Index()
	if err != nil {
		return nil, nil, "", err
	}
	if err := saveSeen(cfg.Root, cfg.Channel, v.Seen()); err != nil {
		return nil, nil, "", err
	}
	b := v.Bundle()
	if len(chain) > 0 {
		b.Roots = append(chain[:len(chain)-1:len(chain)-1], b.Roots...)
	}
	raw, err := repo.MarshalBundle(b)
	return raw, idx, mirror, err
}

func sizeOr(n int64) int64 {
	if n > 0 {
		return n
	}
	return repo.MaxIndexSize
}

// walkRoots fetches root N+1, N+2, … until no mirror has the next one; a
// root that some mirror serves but that does not verify on any is an error.
func walkRoots(ctx context.Context, cfg *Config, f *fetch.Fetcher, v *repo.Verifier) error {
	if err := SaveRoot(cfg.Root, v.Root()); err != nil {
		return err
	}
	for i := 0; i < repo.MaxRootRotations; i++ {
		next := repo.RootPathOf(v.RootVersion() + 1)
		_, _, err := f.Get(ctx, next, repo.MaxMetaSize, func(b []byte) error { return v.UpdateRoot(b) })
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, errdefs.ErrNetwork) {
				return nil // not published (404) or no mirror answered: the chain ends here
			}
			return err
		}
		if err := SaveRoot(cfg.Root, v.Root()); err != nil {
			return err
		}
		cfg.Logf("trusted root is now version %d", v.RootVersion())
	}
	return nil
}

// SaveRoot keeps root b in the machine's persistent trust state
// (R/var/lib/upgrade/roots/N.root.json), so that a revoked key stays
// revoked whatever slot boots.
func SaveRoot(r layout.Root, b []byte) error {
	n, err := repo.RootVersionOf(b)
	if err != nil {
		return err
	}
	dir := r.RootsDir()
	p := filepath.Join(dir, repo.RootPathOf(n))
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0755); err != nil {
		return err
	}
	return atomicfile.Write(p, b, 0644)
}

// LoadRoots returns the persistent chain of trusted roots, oldest first
// (empty before the first update). Each was verified before it was kept.
func LoadRoots(r layout.Root) ([][]byte, error) {
	ents, err := os.ReadDir(r.RootsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var vers []int64
	for _, e := range ents {
		s, ok := strings.CutSuffix(e.Name(), ".root.json")
		if n, err := strconv.ParseInt(s, 10, 64); ok && err == nil && n > 0 {
			vers = append(vers, n)
		}
	}
	sort.Slice(vers, func(i, j int) bool { return vers[i] < vers[j] })
	var out [][]byte
	for i, n := range vers {
		if i > 0 && n != vers[i-1]+1 {
			return nil, fmt.Errorf("%s: roots %d and %d: a gap in the chain: %w", r.RootsDir(), vers[i-1], n, errdefs.ErrCorrupt)
		}
		b, err := os.ReadFile(filepath.Join(r.RootsDir(), repo.RootPathOf(n)))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
