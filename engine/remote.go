package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// Remote is a verified view of the repository: the index accepted now, and
// the fetcher that got it.
type Remote struct {
	cfg      *Config
	F        *fetch.Fetcher
	Index    *repo.Index
	IndexRaw []byte // the exact signed envelope, kept with the slot
	Mirror   string
	progress atomic.Pointer[func(done, total int64)]
}

// OpenRemote fetches and verifies the signed index from the first mirror
// that serves a valid one (a malicious mirror cannot win over a good one),
// and records it as seen (anti-rollback, anti-freeze).
func OpenRemote(ctx context.Context, cfg *Config, progress func(done, total int64)) (*Remote, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	fo := cfg.Fetch
	fo.Mirrors = cfg.Mirrors
	rmp := &Remote{cfg: cfg}
	if progress != nil {
		rmp.SetProgress(progress)
	}
	fo.Progress = func(done, total int64) {
		if p := rmp.progress.Load(); p != nil {
			(*p)(done, total)
		}
	}
	if fo.Logf == nil {
		fo.Logf = cfg.Logf
	}
	f, err := fetch.New(fo)
	if err != nil {
		return nil, err
	}
	seen, err := loadSeen(cfg.Root)
	if err != nil {
		return nil, err
	}
	exp := repo.Expect{Channel: cfg.Channel, Hardware: cfg.Hardware, Now: cfg.Now(), Seen: seen}
	var idx *repo.Index
	raw, mirror, err := f.Get(ctx, repo.IndexPath, repo.MaxIndexSize, func(b []byte) error {
		x, err := repo.OpenIndex(b, cfg.Keys, exp)
		if err == nil {
			idx = x
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	s, err := repo.SeenOf(raw, idx)
	if err != nil {
		return nil, err
	}
	if err := saveSeen(cfg.Root, s); err != nil {
		return nil, err
	}
	rmp.F, rmp.Index, rmp.IndexRaw, rmp.Mirror = f, idx, raw, mirror
	return rmp, nil
}

func loadSeen(r layout.Root) (*repo.SeenIndex, error) {
	b, err := os.ReadFile(r.SeenIndex())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s repo.SeenIndex
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", r.SeenIndex(), err, errdefs.ErrCorrupt)
	}
	return &s, nil
}

func saveSeen(r layout.Root, s repo.SeenIndex) error {
	b, _ := json.Marshal(s)
	if err := os.MkdirAll(r.StateDir(), 0755); err != nil {
		return err
	}
	return atomicfile.Write(r.SeenIndex(), b, 0644)
}

// Target is one version, with its manifest and delivery list fetched and
// verified against the pins in the signed index.
type Target struct {
	Ref         repo.VersionRef
	Manifest    *manifest.Manifest
	ManifestRaw []byte
	Delivery    *repo.Delivery
}

// Pick returns the version to install: want, or the newest when want is 0.
func (rm *Remote) Pick(want uint64) (*repo.VersionRef, error) {
	if want == 0 {
		if l := rm.Index.Latest(); l != nil {
			return l, nil
		}
		return nil, fmt.Errorf("the repository has no versions: %w", errdefs.ErrNotFound)
	}
	if v := rm.Index.Find(want); v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("version %d is not in the repository: %w", want, errdefs.ErrNotFound)
}

// LoadTarget fetches the manifest and delivery list of v into staging.
func (rm *Remote) LoadTarget(ctx context.Context, v *repo.VersionRef) (*Target, error) {
	if lim := rm.cfg.policy().MaxEntries; v.Entries > manifest.DefaultMaxEntries || (lim > 0 && v.Entries > lim) {
		return nil, fmt.Errorf("version %d has %d entries, more than this machine accepts: %w", v.Version, v.Entries, errdefs.ErrTooLarge)
	}
	mb, err := rm.getDoc(ctx, v.Manifest)
	if err != nil {
		return nil, fmt.Errorf("manifest of version %d: %w", v.Version, err)
	}
	m, err := manifest.Decode(bytes.NewReader(mb), rm.cfg.policy())
	if err != nil {
		return nil, fmt.Errorf("manifest of version %d: %w", v.Version, err)
	}
	if m.Version != v.Version || m.Channel != rm.Index.Channel {
		return nil, fmt.Errorf("manifest says version %d channel %q, index says %d %q: %w", m.Version, m.Channel, v.Version, rm.Index.Channel, errdefs.ErrBadSignature)
	}
	if rm.cfg.Hardware != "" && m.Hardware != "" && m.Hardware != rm.cfg.Hardware {
		return nil, fmt.Errorf("version %d is for hardware %q, this machine is %q: %w", v.Version, m.Hardware, rm.cfg.Hardware, errdefs.ErrPolicy)
	}
	db, err := rm.getDoc(ctx, v.Delivery)
	if err != nil {
		return nil, fmt.Errorf("delivery list of version %d: %w", v.Version, err)
	}
	dl, err := repo.ParseDelivery(db, v.Version)
	if err != nil {
		return nil, err
	}
	return &Target{Ref: *v, Manifest: m, ManifestRaw: mb, Delivery: dl}, nil
}

// getDoc fetches a pinned object into staging and returns its content.
func (rm *Remote) getDoc(ctx context.Context, ref repo.BlobRef) ([]byte, error) {
	dir := rm.cfg.Root.StagingDir()
	if err := os.MkdirAll(dir, 0755); err != nil {
		return nil, err
	}
	b := fetch.Blob{Path: repo.ObjectPath(ref.SHA256), Size: ref.StoredSize, SHA256: ref.Stored}
	if err := rm.F.Fetch(ctx, dir, []fetch.Blob{b}); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, ref.Stored.String()))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out bytes.Buffer
	if _, err := delta.Decompress(f, &out, ref.Size); err != nil {
		return nil, err
	}
	if int64(out.Len()) != ref.Size || digest.Of(out.Bytes()) != ref.SHA256 {
		return nil, fmt.Errorf("content %s does not match the signed digest: %w", ref.SHA256, errdefs.ErrCorrupt)
	}
	return out.Bytes(), nil
}

// SetProgress routes download progress of later Fetch calls to f.
func (rm *Remote) SetProgress(f func(done, total int64)) { rm.progress.Store(&f) }
