package publish

import (
	"bytes"
	"io"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// slimDelivery trims what a client upgrading from the newest previous
// version downloads besides content: the delivery list keeps only the
// objects of contents that version lacks, the full list moving to a
// document the list pins (repo.Delivery.AllObjects); and the new manifest
// gets a delta from the previous one, which every such client holds (two
// releases' manifests share most lines: 0.56 MB compressed, ~0.1 MB as a
// delta, for Go 1.26.8 -> 1.27.3).
func slimDelivery(st store, lists listCodec, prevRef *repo.VersionRef, prev *manifest.Manifest, mb []byte, mref repo.BlobRef, dl *repo.Delivery, res *Result) error {
	had := map[digest.Digest]bool{}
	for i := range prev.Entries {
		if e := &prev.Entries[i]; e.Type == manifest.File {
			had[e.SHA256] = true
		}
	}
	all, err := lists.objects(dl.Version, dl.Objects)
	if err != nil {
		return err
	}
	if dl.AllObjects, err = st.putBytes(all); err != nil {
		return err
	}
	res.StoredBytes += dl.AllObjects.StoredSize
	var short []repo.BlobRef
	for _, o := range dl.Objects {
		if !had[o.SHA256] {
			short = append(short, o)
		}
	}
	dl.Objects = short

	old, err := st.readObject(prevRef.Manifest.SHA256, prevRef.Manifest.Size)
	if err != nil || len(old) == 0 || len(old) > delta.MaxBase {
		return err
	}
	var buf bytes.Buffer
	if err := delta.Create(old, bytes.NewReader(mb), &buf); err != nil {
		return err
	}
	if float64(buf.Len()) > keepRatio*float64(mref.StoredSize) {
		return nil
	}
	ref := repo.DeltaRef{From: prevRef.Manifest.SHA256, To: mref.SHA256}
	d, n, err := st.put(ref.Path(), func(w io.Writer) error { _, err := w.Write(buf.Bytes()); return err })
	if err != nil {
		return err
	}
	ref.SHA256, ref.Size = d, n
	dl.Deltas = append(dl.Deltas, ref)
	res.StoredBytes += n
	return nil
}

// listCodec writes the delivery list and the full object list in the
// format Options.DeliverySpec asks for.
type listCodec struct {
	spec     int
	first    map[digest.Digest]int // content -> first manifest entry holding it
	manifest digest.Digest         // the version's manifest, which a manifest delta makes
}

func (c listCodec) delivery(dl *repo.Delivery) ([]byte, error) {
	if c.spec == repo.DeliverySpec {
		return jsonCompact(dl)
	}
	return repo.EncodeLean(dl, c.first, c.manifest)
}

func (c listCodec) objects(v layout.Version, objs []repo.BlobRef) ([]byte, error) {
	if c.spec == repo.DeliverySpec {
		return jsonCompact(repo.ObjectList{Type: "objects", Version: v, Objects: objs})
	}
	return repo.EncodeLeanObjects(v, objs, c.first)
}
