// Package publish turns a directory tree into a new version of a static
// repository (build-server side): content-addressed compressed objects,
// binary deltas against the previous versions' contents at the same path, a
// manifest and a delivery list stored as objects, and a re-signed index. It
// only ever adds immutable files; the index is replaced atomically last, so a
// mirror that syncs at any instant serves a consistent repository.
package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// Options for Add.
type Options struct {
	Repo string          // repository directory
	Key  repo.PrivateKey // signing key; a new repository gives it every role
	// Keys are further signing keys: each signs the roles the root lists
	// it for (an online timestamp key, a targets key brought for a release).
	Keys       []repo.PrivateKey
	Channel    string         // e.g. "stable"
	Hardware   string         // e.g. "xo-1.75"; "" for any
	Name       string         // human version name, e.g. "2.0"
	Notes      string         // release notes shown by clients (plain text)
	Version    layout.Version // 0 = latest+1
	DeltaDepth int            // make deltas from this many previous versions (default 3)
	// Best spends build-server CPU for smaller downloads: deltas of large
	// files and packs are made by the zstd command (level 19) when it is
	// installed, 10-16 % smaller than the Go encoder's on executables and
	// several times slower; packs, and new large contents without a
	// delta, are also offered as xz when the xz command is installed and
	// that saves 5 % (xz.go). For releases; tests and drafts leave it off.
	Best bool
	// TargetsDraft, when set, leaves the new version's targets unsigned in
	// this file instead of releasing them: the targets key signs them
	// offline (SignDraft) and PublishTargets releases them.
	TargetsDraft string
	TTL          time.Duration // timestamp validity (default DefaultTimestampTTL, a day)
	// DeliverySpec is the delivery list format: repo.DeliverySpecLean (the
	// default, 0) or repo.DeliverySpec for clients older than it, which
	// refuse a lean list.
	DeliverySpec int
	// AllowDevices publishes device nodes and fifos, for clients whose
	// upgraded.conf says allow_devices = true; by default Add refuses a
	// tree holding anything manifest.DefaultPolicy forbids.
	AllowDevices bool
	// StripForbidden leaves such entries out of the version instead of
	// refusing it (a debootstrap'd root's /dev nodes: the running system
	// has devtmpfs).
	StripForbidden bool
	Now            func() time.Time
	Logf           func(string, ...any)
}

// Result says what Add did.
type Result struct {
	Version     layout.Version
	Unchanged   bool // the tree equals the latest version: nothing was added
	Entries     int
	NewObjects  int
	NewDeltas   int
	StoredBytes int64 // bytes this call added to the repository
}

func (o *Options) defaults() {
	if o.DeltaDepth == 0 {
		o.DeltaDepth = 3
	}
	if o.DeliverySpec == 0 {
		o.DeliverySpec = repo.DeliverySpecLean
	}
	if o.TTL == 0 {
		o.TTL = DefaultTimestampTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Add publishes tree as a new version. Re-adding the tree of the latest
// version changes nothing.
func Add(ctx context.Context, tree string, o Options) (Result, error) {
	o.defaults()
	if o.Channel == "" {
		return Result{}, fmt.Errorf("publish: empty channel: %w", errdefs.ErrInvalidArgument)
	}
	if o.DeliverySpec != repo.DeliverySpec && o.DeliverySpec != repo.DeliverySpecLean {
		return Result{}, fmt.Errorf("publish: delivery list spec %d, want %d or %d: %w", o.DeliverySpec, repo.DeliverySpec, repo.DeliverySpecLean, errdefs.ErrInvalidArgument)
	}
	st := store{dir: o.Repo}
	if o.Best {
		st.zstd = delta.CLI()
	}
	meta, idx, err := LoadIndex(o)
	if err != nil {
		return Result{}, err
	}
	m, err := manifest.Scan(ctx, tree)
	if err != nil {
		return Result{}, fmt.Errorf("publish: scan %s: %w", tree, err)
	}
	if err := m.Validate(manifest.Policy{AllowSetuid: true, AllowDevices: true}); err != nil {
		return Result{}, fmt.Errorf("publish: %s: %w", tree, err)
	}
	if err := applyClientPolicy(m, &o); err != nil {
		return Result{}, fmt.Errorf("publish: %s: %w", tree, err)
	}
	var prev []*manifest.Manifest // newest first
	for i := len(idx.Versions) - 1; i >= 0 && len(prev) < o.DeltaDepth; i-- {
		pm, err := loadManifest(st, &idx.Versions[i])
		if err != nil {
			return Result{}, err
		}
		prev = append(prev, pm)
	}
	if len(prev) > 0 && sameEntries(prev[0], m) {
		return Result{Version: prev[0].Version, Unchanged: true, Entries: len(m.Entries)}, nil
	}
	ver := o.Version
	if l := idx.Latest(); ver == 0 && l != nil {
		ver = l.Version + 1
	} else if ver == 0 {
		ver = 1
	}
	if l := idx.Latest(); l != nil && ver <= l.Version {
		return Result{}, fmt.Errorf("publish: version %d is not above the latest %d: %w", ver, l.Version, errdefs.ErrInvalidArgument)
	}
	now := o.Now().UTC().Truncate(time.Second)
	m.Header = manifest.Header{Channel: o.Channel, Hardware: o.Hardware, Version: ver, Name: o.Name, Created: now}

	res := Result{Version: ver, Entries: len(m.Entries)}
	dl := &repo.Delivery{Type: "delivery", Spec: repo.DeliverySpec, Version: ver}
	if err := storeObjects(ctx, st, tree, m, dl, &res); err != nil {
		return Result{}, err
	}
	if err := makeDeltas(ctx, st, tree, m, prev, dl, &res, o); err != nil {
		return Result{}, err
	}
	mb := m.Bytes()
	mref, err := st.putBytes(mb)
	if err != nil {
		return Result{}, err
	}
	lists := listCodec{spec: o.DeliverySpec, first: m.FirstEntries(), manifest: mref.SHA256}
	if len(prev) > 0 {
		dl.Sort() // makePacks looks deltas up
		if err := makePacks(ctx, st, tree, m, prev[0], dl, &res, o); err != nil {
			return Result{}, err
		}
		if err := slimDelivery(st, lists, &idx.Versions[len(idx.Versions)-1], prev[0], mb, mref, dl, &res); err != nil {
			return Result{}, err
		}
	}
	dl.Sort()
	dlBytes, err := lists.delivery(dl)
	if err != nil {
		return Result{}, err
	}
	dref, err := st.putBytes(dlBytes)
	if err != nil {
		return Result{}, err
	}
	vref := repo.VersionRef{Version: ver, Name: o.Name, Notes: o.Notes, Created: now, Manifest: mref, Delivery: dref, Entries: len(m.Entries)}
	if err := addTargets(meta, o, &vref, now); err != nil {
		return Result{}, err
	}
	o.Logf("published version %d (%d entries, %d new objects, %d new deltas, %d bytes added)", ver, res.Entries, res.NewObjects, res.NewDeltas, res.StoredBytes)
	return res, nil
}

// Resign refreshes the snapshot and timestamp (a build server runs it
// well before the timestamp expires, so clients are not frozen), with the
// online keys only. Nothing else changes: no version is added or removed.
func Resign(o Options) error {
	o.defaults()
	meta, _, err := LoadIndex(o)
	if err != nil {
		return err
	}
	now := o.Now().UTC().Truncate(time.Second)
	if err := meta.Release(o.signers(), false, now, o.TTL); err != nil {
		return err
	}
	return writeLegacy(meta, o, now)
}

// addTargets adds version v's targets, signs the targets with the keys
// given (the targets role's threshold must be met), and releases them.
func addTargets(meta *Meta, o Options, v *repo.VersionRef, now time.Time) error {
	ts, err := repo.VersionTargets(o.Channel, o.Hardware, v)
	if err != nil {
		return err
	}
	for name, tf := range ts {
		if err := linkTarget(o.Repo, name, pinOf(v, name)); err != nil {
			return err
		}
		meta.Targets.Signed.Targets[name] = tf
	}
	meta.Targets.Signed.Version++
	meta.Targets.Signed.Expires = now.Add(DefaultTargetsTTL)
	if o.TargetsDraft != "" {
		meta.Targets.ClearSignatures()
		b, err := meta.Targets.ToBytes(true)
		if err != nil {
			return err
		}
		return atomicfile.Write(o.TargetsDraft, b, 0644)
	}
	if err := signRole(meta.Root, "targets", meta.Targets, o.signers()); err != nil {
		return err
	}
	if err := meta.Release(o.signers(), true, now, o.TTL); err != nil {
		return err
	}
	return writeLegacy(meta, o, now)
}

func pinOf(v *repo.VersionRef, name string) repo.BlobRef {
	if name == repo.TargetName(v.Version, repo.KindManifest) {
		return v.Manifest
	}
	return v.Delivery
}

// signers are the keys given, each once.
func (o *Options) signers() []repo.PrivateKey {
	var out []repo.PrivateKey
	seen := map[string]bool{}
	for _, k := range append([]repo.PrivateKey{o.Key}, o.Keys...) {
		if k.Key != nil && !seen[k.ID] {
			seen[k.ID] = true
			out = append(out, k)
		}
	}
	return out
}

// LoadIndex reads the repository's metadata and its versions; a directory
// without metadata starts a repository whose every role is o.Key's (the
// ceremony's init makes one with separate keys). A repository of another
// channel is refused.
func LoadIndex(o Options) (*Meta, *repo.Index, error) {
	o.defaults()
	meta, err := LoadMeta(o.Repo)
	if errors.Is(err, ErrNoRepository) {
		// The old index is checked before anything is written.
		var legacy *repo.Index
		if legacy, err = readLegacy(o); err == nil {
			if meta, err = newSingleKey(o); err == nil && legacy != nil {
				err = migrateLegacy(meta, o, legacy, o.Now().UTC().Truncate(time.Second))
			}
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("publish: %w", err)
	}
	idx, err := meta.Index()
	if err != nil {
		return nil, nil, fmt.Errorf("publish: existing targets: %w", err)
	}
	if len(idx.Versions) > 0 && idx.Channel != o.Channel {
		return nil, nil, fmt.Errorf("publish: %s holds channel %q, not %q: %w", o.Repo, idx.Channel, o.Channel, errdefs.ErrInvalidArgument)
	}
	return meta, idx, nil
}

// newSingleKey makes a repository whose four roles are o.Key's, threshold
// 1: what a test or a small deployment starts with; init and the root
// commands give each role its own keys later.
func newSingleKey(o Options) (*Meta, error) {
	if o.Key.Key == nil {
		return nil, fmt.Errorf("%s has no metadata and no key was given: %w", o.Repo, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(o.Repo, 0755); err != nil {
		return nil, err
	}
	pub := []repo.PublicKey{o.Key.Public()}
	roles := map[string][]repo.PublicKey{"root": pub, "targets": pub, "snapshot": pub, "timestamp": pub}
	meta, err := NewMeta(o.Repo, roles, nil, o.Now().UTC().Truncate(time.Second))
	if err != nil {
		return nil, err
	}
	if err := signRole(meta.Root, "root", meta.Root, o.signers()); err != nil {
		return nil, err
	}
	if err := meta.WriteRoot(nil); err != nil {
		return nil, err
	}
	return meta, nil
}

func loadManifest(st store, v *repo.VersionRef) (*manifest.Manifest, error) {
	b, err := st.readObject(v.Manifest.SHA256, v.Manifest.Size)
	if err != nil {
		return nil, fmt.Errorf("publish: manifest of version %d: %w", v.Version, err)
	}
	return manifest.Decode(b, manifest.Policy{AllowSetuid: true, AllowDevices: true})
}

func sameEntries(a, b *manifest.Manifest) bool {
	if len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		x, y := &a.Entries[i], &b.Entries[i]
		if x.Path != y.Path || x.Link != y.Link || !x.SameInodeMeta(y) {
			return false
		}
	}
	return true
}

// storeObjects compresses every distinct content of m that the repository
// lacks, on every core.
func storeObjects(ctx context.Context, st store, tree string, m *manifest.Manifest, dl *repo.Delivery, res *Result) error {
	seen := map[digest.Digest]bool{}
	var todo []*manifest.Entry
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Type == manifest.File && !seen[e.SHA256] {
			seen[e.SHA256] = true
			todo = append(todo, e)
		}
	}
	refs := make([]repo.BlobRef, len(todo))
	err := parallel(ctx, len(todo), func(i int) error {
		e := todo[i]
		_, _, existed, err := st.stat(repo.ObjectPath(e.SHA256))
		if err != nil {
			return err
		}
		refs[i], err = st.putObject(e.SHA256, e.Size, func() (io.ReadCloser, error) {
			return os.Open(filepath.Join(tree, filepath.FromSlash(e.Path)))
		})
		if err == nil && !existed {
			mu.Lock()
			res.NewObjects++
			res.StoredBytes += refs[i].StoredSize
			mu.Unlock()
		}
		return err
	})
	dl.Objects = refs
	return err
}

var mu sync.Mutex

// parallel runs f(0..n-1) on GOMAXPROCS workers, stopping at the first error.
func parallel(ctx context.Context, n int, f func(int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return f(i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
