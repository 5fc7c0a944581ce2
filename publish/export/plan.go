package export

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// docPolicy decodes the publisher's own manifests: the clients' policy was
// applied when they were added.
var docPolicy = manifest.Policy{AllowSetuid: true, AllowDevices: true}

// source reads documents of the repository being exported.
type source struct{ dir string }

// doc returns the content of a pinned document, checked against its pin.
func (s source) doc(ref repo.BlobRef) ([]byte, error) {
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(repo.ObjectPath(ref.SHA256))))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := delta.Decompress(f, &b, ref.Size); err != nil {
		return nil, fmt.Errorf("object %s: %w", ref.SHA256, err)
	}
	if int64(b.Len()) != ref.Size || digest.Of(b.Bytes()) != ref.SHA256 {
		return nil, fmt.Errorf("object %s does not match the index: %w", ref.SHA256, errdefs.ErrCorrupt)
	}
	return b.Bytes(), nil
}

func (s source) manifest(ref *repo.VersionRef) (*manifest.Manifest, error) {
	b, err := s.doc(ref.Manifest)
	if err != nil {
		return nil, fmt.Errorf("manifest of version %d: %w", ref.Version, err)
	}
	return manifest.Decode(b, docPolicy)
}

// blobSet is the repository files to copy, each once.
type blobSet map[string]fetch.Blob

func newBlobSet() blobSet { return blobSet{} }

func (s blobSet) add(b fetch.Blob) { s[b.Path] = b }

func (s blobSet) sorted() []fetch.Blob {
	out := make([]fetch.Blob, 0, len(s))
	for _, b := range s {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b fetch.Blob) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// docBlob is the stored object of a pinned document.
func docBlob(ref repo.BlobRef) fetch.Blob {
	return fetch.Blob{Path: repo.ObjectPath(ref.SHA256), Size: ref.StoredSize, SHA256: ref.Stored}
}

func deltaBlob(d repo.DeltaRef) fetch.Blob {
	return fetch.Blob{Path: d.Path(), Size: d.Size, SHA256: d.SHA256}
}

// addVersion adds what machines at the versions from (nil: any) fetch to
// upgrade to ref. The manifest and the delivery list are always there; a
// client patches the manifest when a delta from its own is offered, but
// the whole one costs little and keeps the disk usable if that fails.
func (s blobSet) addVersion(src source, idx *repo.Index, ref *repo.VersionRef, from []layout.Version) error {
	s.add(docBlob(ref.Manifest))
	s.add(docBlob(ref.Delivery))
	db, err := src.doc(ref.Delivery)
	if err != nil {
		return fmt.Errorf("delivery list: %w", err)
	}
	dl, err := repo.ParseDelivery(db, ref.Version)
	if err != nil {
		return err
	}
	m, err := src.manifest(ref)
	if err != nil {
		return err
	}
	if err := dl.Resolve(m.Content); err != nil {
		return fmt.Errorf("delivery list: %w", err)
	}
	if from == nil {
		return s.addWhole(src, dl, m)
	}
	short := &engine.Target{Ref: *ref, Manifest: m, Delivery: dl}
	var full *engine.Target // with the whole object list, loaded when a plan needs it
	for _, b := range from {
		if b >= ref.Version {
			continue // such a machine does not upgrade to ref
		}
		var active *manifest.Manifest
		if b != 0 {
			bref := idx.Find(b)
			if bref == nil {
				return fmt.Errorf("base version %d: %w", b, errNoBase)
			}
			if active, err = src.manifest(bref); err != nil {
				return err
			}
			for _, d := range dl.DeltasTo(ref.Manifest.SHA256) {
				if d.From == bref.Manifest.SHA256 && d.With.IsZero() {
					s.add(deltaBlob(d))
				}
			}
		}
		// As engine.Remote.Plan: the short object list first, the whole
		// one (a document of its own) only when the plan needs it.
		p, err := engine.MakePlan(active, nil, short)
		if err != nil && !dl.AllObjects.SHA256.IsZero() {
			if full == nil {
				if full, err = fullTarget(src, short); err != nil {
					return err
				}
			}
			s.add(docBlob(dl.AllObjects))
			p, err = engine.MakePlan(active, nil, full)
		}
		if err != nil {
			return fmt.Errorf("plan from version %d: %w", b, err)
		}
		for _, b := range p.Blobs {
			s.add(b)
		}
	}
	return nil
}

// fullTarget is t with the delivery list's whole object list.
func fullTarget(src source, t *engine.Target) (*engine.Target, error) {
	b, err := src.doc(t.Delivery.AllObjects)
	if err != nil {
		return nil, fmt.Errorf("object list: %w", err)
	}
	objs, err := repo.ParseObjects(b, t.Ref.Version, t.Manifest.Content)
	if err != nil {
		return nil, err
	}
	dl := *t.Delivery
	dl.Objects, dl.AllObjects = objs, repo.BlobRef{}
	return &engine.Target{Ref: t.Ref, Manifest: t.Manifest, Delivery: &dl}, nil
}

// addWhole adds everything the delivery list offers: any machine finds
// what its plan picks, whatever it runs and whatever drifted.
func (s blobSet) addWhole(src source, dl *repo.Delivery, m *manifest.Manifest) error {
	objs := dl.Objects
	if !dl.AllObjects.SHA256.IsZero() {
		s.add(docBlob(dl.AllObjects))
		b, err := src.doc(dl.AllObjects)
		if err != nil {
			return fmt.Errorf("object list: %w", err)
		}
		if objs, err = repo.ParseObjects(b, m.Version, m.Content); err != nil {
			return err
		}
	}
	for _, o := range objs {
		s.add(docBlob(o))
	}
	for _, d := range dl.Deltas {
		s.add(deltaBlob(d))
	}
	for i := range dl.Packs {
		p := &dl.Packs[i]
		s.add(fetch.Blob{Path: repo.PackPath(p), Size: p.Size, SHA256: p.SHA256})
	}
	return nil
}
