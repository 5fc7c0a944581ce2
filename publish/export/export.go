// Package export copies the part of a repository that some machines need
// onto a removable disk, for schools that update without a network: the
// signed index as it is, the manifests and delivery lists of the chosen
// versions, and the objects, deltas and packs that upgrading from the
// chosen base versions fetches. The result is a repository like any other;
// a client reads it as a file:// mirror.
//
// What to copy is decided by the client's own planner (engine.MakePlan)
// applied to each base version's manifest, so the disk holds what the
// client will ask for and nothing else. The index is never re-signed: a
// new serial on the disk would make laptops refuse the network's index
// later as a rollback, and the same serial with other bytes as a fork.
package export

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
)

// Options for Export.
type Options struct {
	Repo string       // the repository to read
	To   string       // the directory to fill (created; an earlier export there is kept and added to)
	Keys repo.Keyring // keys of the format before TUF the clients trust (they adopt the first root they signed)
	Root []byte       // the TUF root the clients trust
	// Versions are the versions to carry (nil: the newest). Clients pick
	// the newest version of the index, so leaving it out means they must
	// name the version they want.
	Versions []layout.Version
	// From are the versions the machines to update run; 0 stands for a
	// machine with nothing (provisioning). Nil: any machine, so the whole
	// delivery of each version is copied.
	From []layout.Version
	Now  func() time.Time
	Logf func(string, ...any)
}

// Result says what Export wrote.
type Result struct {
	Versions []layout.Version
	Files    int       // repository files the export holds for these versions
	Copied   int       // of which this call wrote (the others were there)
	Bytes    int64     // size of the Files
	Expires  time.Time // after this the clients refuse the copied index
	Serial   uint64
	Newest   bool // the index's newest version is among Versions
}

// Export writes what o.Versions need into o.To.
func Export(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Repo == "" || o.To == "" {
		return nil, fmt.Errorf("export: needs a repository and a destination: %w", errdefs.ErrInvalidArgument)
	}
	if len(o.Keys) == 0 && o.Root == nil {
		return nil, fmt.Errorf("export: no trusted root or keys to check the metadata with: %w", errdefs.ErrFailedPrecondition)
	}
	src := source{dir: o.Repo}
	_, idx, meta, err := repo.OpenDir(ctx, o.Repo, o.trust(), repo.Expect{Now: o.Now()})
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w (laptops would refuse it too: check --keys, or re-sign it with upgrade-publish resign)", o.Repo, err)
	}
	targets, err := pickVersions(idx, o.Versions)
	if err != nil {
		return nil, err
	}
	for _, b := range o.From {
		if b != 0 && idx.Find(b) == nil {
			return nil, fmt.Errorf("export: base version %d: %w", b, errNoBase)
		}
	}
	need := newBlobSet()
	res := &Result{Expires: idx.Expires, Serial: idx.Serial}
	for _, ref := range targets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := need.addVersion(src, idx, ref, o.From); err != nil {
			return nil, fmt.Errorf("export: version %d: %w", ref.Version, err)
		}
		res.Versions = append(res.Versions, ref.Version)
	}
	res.Newest = slices.Contains(res.Versions, idx.Latest().Version)
	if err := checkNotOlder(ctx, o, idx); err != nil {
		return nil, err
	}
	if err := copyAll(ctx, src, o.To, need, meta, res); err != nil {
		return nil, fmt.Errorf("export to %s: %w", o.To, err)
	}
	o.Logf("exported versions %v: %d files (%d new), %d bytes; the index (serial %d) expires %s",
		res.Versions, res.Files, res.Copied, res.Bytes, res.Serial, res.Expires.UTC().Format(time.RFC3339))
	return res, nil
}

func (o Options) trust() repo.Trust { return repo.Trust{Root: o.Root, Legacy: o.Keys} }

// checkNotOlder refuses to replace an index already at the destination
// by an older one of the same channel: laptops that read the newer one
// would refuse the disk as a rollback.
func checkNotOlder(ctx context.Context, o Options, idx *repo.Index) error {
	_, old, _, err := repo.OpenDir(ctx, o.To, o.trust(), repo.Expect{})
	if err != nil || old.Channel != idx.Channel || old.Serial <= idx.Serial {
		return nil
	}
	return fmt.Errorf("export: %s holds a newer index of channel %q (serial %d) than the repository's (serial %d): laptops would refuse the older one; export from the newer repository or to an empty directory: %w",
		o.To, idx.Channel, old.Serial, idx.Serial, errdefs.ErrFailedPrecondition)
}

// pickVersions resolves the wanted versions in the index, oldest first.
func pickVersions(idx *repo.Index, want []layout.Version) ([]*repo.VersionRef, error) {
	if len(want) == 0 {
		if l := idx.Latest(); l != nil {
			return []*repo.VersionRef{l}, nil
		}
		return nil, fmt.Errorf("export: the repository has no versions: %w", errdefs.ErrNotFound)
	}
	var out []*repo.VersionRef
	for _, v := range want {
		ref := idx.Find(v)
		if ref == nil {
			return nil, fmt.Errorf("export: version %d is not in the index: %w", v, errdefs.ErrNotFound)
		}
		if !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b *repo.VersionRef) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}

var errNoBase = fmt.Errorf("not in the index: %w", errdefs.ErrNotFound)

// ParseVersions reads a comma-separated list of versions ("2,3"); "" and
// "all" give nil (for Options.From: any machine).
func ParseVersions(s string) ([]layout.Version, error) {
	if s == "" || s == "all" {
		return nil, nil
	}
	var out []layout.Version
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version list %q: %q is not a version number: %w", s, f, errdefs.ErrInvalidArgument)
		}
		out = append(out, layout.Version(v))
	}
	return out, nil
}
