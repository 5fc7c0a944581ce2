package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// OpenDir verifies a repository directory as a client would (export, the
// publisher's own checks): the root chain from tr, then timestamp,
// snapshot and targets. Files lists the metadata files it read, in the
// order a copy must write them (timestamp.json last).
func OpenDir(ctx context.Context, dir string, tr Trust, exp Expect) (v *Verifier, x *Index, files []string, err error) {
	read := func(p string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err == nil {
			files = append(files, p)
		}
		return b, err
	}
	var first []byte
	if tr.Root == nil {
		if first, err = read(RootPathOf(1)); err != nil {
			return nil, nil, nil, err
		}
	}
	if v, err = NewVerifier(ctx, tr, exp, first); err != nil {
		return nil, nil, nil, err
	}
	for i := 0; i < MaxRootRotations; i++ {
		b, err := read(RootPathOf(v.RootVersion() + 1))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, nil, nil, err
		}
		if err := v.UpdateRoot(b); err != nil {
			return nil, nil, nil, err
		}
	}
	ts, err := os.ReadFile(filepath.Join(dir, TimestampPath))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := v.UpdateTimestamp(ts); err != nil {
		return nil, nil, nil, err
	}
	p, _, _ := v.SnapshotMeta()
	b, err := read(p)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := v.UpdateSnapshot(b); err != nil {
		return nil, nil, nil, err
	}
	p, _, _ = v.TargetsMeta()
	if b, err = read(p); err != nil {
		return nil, nil, nil, err
	}
	if err := v.UpdateTargets(b); err != nil {
		return nil, nil, nil, err
	}
	if x, err = v.Index(); err != nil {
		return nil, nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, RootPath)); err == nil {
		files = append(files, RootPath)
	}
	files = append(files, TimestampPath)
	return v, x, files, nil
}

// IndexOfTargets is the client's view of targets metadata the caller has
// itself (the publisher, its own files).
func IndexOfTargets(raw []byte) (*Index, error) {
	t, err := parseTargets(raw)
	if err != nil {
		return nil, err
	}
	return indexOf(&t.Signed)
}
