package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	IndexRaw []byte // the verified metadata (repo.Bundle), kept with the slot
	Mirror   string
	progress atomic.Pointer[func(done, total int64)]
	// readOnly (a check): documents come from staging only when an
	// earlier run left them there, and are otherwise fetched into memory.
	readOnly bool
}

// OpenRemote runs TUF's client workflow against the mirrors (tuf.go):
// the root chain, then the timestamp from every mirror, keeping the valid
// one with the highest version (a malicious mirror cannot win over a good
// one, nor a stale one over a fresh one), then its snapshot and targets;
// and records what it trusts now (anti-rollback, anti-freeze).
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
	seen, err := loadSeen(cfg.Root, cfg.Channel)
	if err != nil {
		return nil, err
	}
	exp := repo.Expect{Channel: cfg.Channel, Hardware: cfg.Hardware, Now: cfg.Now(), Seen: seen}
	bundle, idx, mirror, err := openMetadata(ctx, cfg, f, exp)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	rmp.F, rmp.Index, rmp.IndexRaw, rmp.Mirror = f, idx, bundle, mirror
	return rmp, nil
}

func loadSeen(r layout.Root, channel string) (*repo.Seen, error) {
	if err := r.MigrateSeen(channel); err != nil {
		return nil, err
	}
	path := r.SeenIndexFor(channel)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// A record of the format before TUF ({"serial":…}) holds neither: the
	// first update after the migration starts afresh.
	var s repo.Seen
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", path, err, errdefs.ErrCorrupt)
	}
	return &s, nil
}

func saveSeen(r layout.Root, channel string, s repo.Seen) error {
	b, _ := json.Marshal(s)
	path := r.SeenIndexFor(channel)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil // metadata seen before writes nothing (a check's promise)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0755); err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0644)
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
func (rm *Remote) Pick(want layout.Version) (*repo.VersionRef, error) {
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
	return rm.LoadTargetFrom(ctx, v, nil)
}

// LoadTargetFrom is LoadTarget for a machine running cur (nil: none): the
// delivery list comes first, and when it has a delta from cur's manifest to
// v's, the manifest is patched from cur's instead of downloaded whole.
func (rm *Remote) LoadTargetFrom(ctx context.Context, v *repo.VersionRef, cur *Installed) (*Target, error) {
	if lim := rm.cfg.policy().MaxEntries; v.Entries > manifest.DefaultMaxEntries || (lim > 0 && v.Entries > lim) {
		return nil, fmt.Errorf("version %d has %d entries, more than this machine accepts: %w", v.Version, v.Entries, errdefs.ErrTooLarge)
	}
	db, err := rm.getDoc(ctx, v.Delivery)
	if err != nil {
		return nil, fmt.Errorf("delivery list of version %d: %w", v.Version, err)
	}
	dl, err := repo.ParseDelivery(db, v.Version)
	if err != nil {
		return nil, err
	}
	var mb []byte
	if cur != nil && len(cur.Raw) > 0 {
		mb = rm.patchDoc(ctx, dl, cur.Raw, v.Manifest)
	}
	if mb == nil {
		if mb, err = rm.getDoc(ctx, v.Manifest); err != nil {
			return nil, fmt.Errorf("manifest of version %d: %w", v.Version, err)
		}
	}
	m, err := manifest.Decode(mb, rm.cfg.policy())
	if err != nil {
		return nil, fmt.Errorf("manifest of version %d: %w", v.Version, err)
	}
	if m.Version != v.Version || m.Channel != rm.Index.Channel {
		return nil, fmt.Errorf("manifest says version %d channel %q, index says %d %q: %w", m.Version, m.Channel, v.Version, rm.Index.Channel, errdefs.ErrBadSignature)
	}
	if rm.cfg.Hardware != "" && m.Hardware != "" && m.Hardware != rm.cfg.Hardware {
		return nil, fmt.Errorf("version %d is for hardware %q, this machine is %q: %w", v.Version, m.Hardware, rm.cfg.Hardware, errdefs.ErrPolicy)
	}
	if err := dl.Resolve(m.Content); err != nil {
		return nil, fmt.Errorf("delivery list of version %d: %w", v.Version, err)
	}
	dl.KeepDeltaCodecs(rm.cfg.deltaCodecs())
	return &Target{Ref: *v, Manifest: m, ManifestRaw: mb, Delivery: dl}, nil
}

// patchDoc makes the pinned document ref from old with a delta the
// delivery list offers, or returns nil (then the caller fetches ref whole:
// a failure here costs bytes, never correctness).
func (rm *Remote) patchDoc(ctx context.Context, dl *repo.Delivery, old []byte, ref repo.BlobRef) []byte {
	from := digest.Of(old)
	for _, d := range dl.DeltasTo(ref.SHA256) {
		if d.From != from || !d.With.IsZero() || d.Codec != "" {
			continue
		}
		f, err := rm.blob(ctx, fetch.Blob{Path: d.Path(), Size: d.Size, SHA256: d.SHA256})
		if err != nil {
			rm.cfg.Logf("manifest delta: %v (fetching the manifest whole)", err)
			return nil
		}
		defer f.Close()
		var out bytes.Buffer
		if _, err := delta.Apply(old, f, &out, ref.Size); err != nil || int64(out.Len()) != ref.Size || digest.Of(out.Bytes()) != ref.SHA256 {
			rm.cfg.Logf("manifest delta %s does not give the pinned manifest (fetching it whole)", d.SHA256)
			return nil
		}
		return out.Bytes()
	}
	return nil
}

// loadAllObjects replaces the delivery list's short object list with the
// full one it pins (see repo.Delivery.AllObjects).
func (rm *Remote) loadAllObjects(ctx context.Context, t *Target) error {
	ref := t.Delivery.AllObjects
	b, err := rm.getDoc(ctx, ref)
	if err != nil {
		return fmt.Errorf("object list of version %d: %w", t.Ref.Version, err)
	}
	objs, err := repo.ParseObjects(b, t.Ref.Version, t.Manifest.Content)
	if err != nil {
		return err
	}
	t.Delivery.Objects, t.Delivery.AllObjects = objs, repo.BlobRef{}
	return nil
}

// Plan is MakePlan, fetching the full object list when the short one in
// the delivery list lacks an object the plan needs.
func (rm *Remote) Plan(ctx context.Context, active *manifest.Manifest, drift map[string]bool, t *Target) (*Plan, error) {
	p, err := MakePlan(active, drift, t)
	if errors.Is(err, errNoObject) && !t.Delivery.AllObjects.SHA256.IsZero() {
		if err := rm.loadAllObjects(ctx, t); err != nil {
			return nil, err
		}
		p, err = MakePlan(active, drift, t)
	}
	return p, err
}

// getDoc fetches a pinned object and returns its content.
func (rm *Remote) getDoc(ctx context.Context, ref repo.BlobRef) ([]byte, error) {
	f, err := rm.blob(ctx, fetch.Blob{Path: repo.ObjectPath(ref.SHA256), Size: ref.StoredSize, SHA256: ref.Stored})
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

// blob opens the pinned blob b from staging, where an upgrade fetches it
// and a resumed one finds it. A check reads it there only when an earlier
// run left it, and otherwise fetches it into memory.
func (rm *Remote) blob(ctx context.Context, b fetch.Blob) (io.ReadCloser, error) {
	dir := rm.cfg.Root.StagingDir()
	path := filepath.Join(dir, b.SHA256.String())
	if rm.readOnly {
		if f, err := os.Open(path); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() == b.Size {
				return f, nil
			}
			f.Close()
		}
		raw, _, err := rm.F.Get(ctx, b.Path, b.Size, func(raw []byte) error {
			if int64(len(raw)) != b.Size || digest.Of(raw) != b.SHA256 {
				return fmt.Errorf("%s: %d bytes, not the %d signed or not their digest: %w", b.Path, len(raw), b.Size, errdefs.ErrCorrupt)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	if err := os.MkdirAll(dir, 0755); err != nil {
		return nil, err
	}
	if err := rm.F.Fetch(ctx, dir, []fetch.Blob{b}); err != nil {
		return nil, err
	}
	return os.Open(path)
}

// SetProgress routes download progress of later Fetch calls to f.
func (rm *Remote) SetProgress(f func(done, total int64)) { rm.progress.Store(&f) }
