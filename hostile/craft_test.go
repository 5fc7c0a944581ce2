package hostile

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// doc reads the content of a pinned document from the shared repository.
func (f *fixture) doc(t testing.TB, ref repo.BlobRef) []byte {
	t.Helper()
	z, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(repo.ObjectPath(ref.SHA256))))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := delta.Decompress(bytes.NewReader(z), &out, ref.Size); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// manifestOf decodes version v's manifest.
func (f *fixture) manifestOf(t testing.TB, v layout.Version) *manifest.Manifest {
	t.Helper()
	raw := f.doc(t, f.parsedIndex(t).Find(v).Manifest)
	m, err := manifest.Decode(raw, manifest.Policy{AllowSetuid: true, AllowDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// objectPath returns the repository path of the stored object of one file
// of version v (a file the upgrade from version 1 has to download).
func (f *fixture) objectPath(t testing.TB, v layout.Version, path string) string {
	t.Helper()
	e := f.manifestOf(t, v).Find(path)
	if e == nil {
		t.Fatalf("version %d has no %s", v, path)
	}
	return repo.ObjectPath(e.SHA256)
}

// delivery returns the delivery list of version v.
func (f *fixture) delivery(t testing.TB, v layout.Version) *repo.Delivery {
	t.Helper()
	ref := f.parsedIndex(t).Find(v).Delivery
	dl, err := repo.ParseDelivery(f.doc(t, ref), v)
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.Resolve(f.manifestOf(t, v).Content); err != nil { // a lean (spec 2) list names contents by entry
		t.Fatal(err)
	}
	return dl
}

// carriers returns every repository path that can deliver the content of
// one file of version v: its object, the packs holding it, the deltas to
// it (docs/repository-format.md).
func (f *fixture) carriers(t testing.TB, v layout.Version, path string) []string {
	t.Helper()
	e := f.manifestOf(t, v).Find(path)
	if e == nil {
		t.Fatalf("version %d has no %s", v, path)
	}
	return f.contentCarriers(t, v, e.SHA256)
}

// manifestCarriers is carriers for the manifest of version v.
func (f *fixture) manifestCarriers(t testing.TB, v layout.Version) []string {
	t.Helper()
	return f.contentCarriers(t, v, f.parsedIndex(t).Find(v).Manifest.SHA256)
}

func (f *fixture) contentCarriers(t testing.TB, v layout.Version, d digest.Digest) []string {
	dl := f.delivery(t, v)
	out := []string{repo.ObjectPath(d)}
	for _, p := range dl.Packs {
		for _, it := range p.Items {
			if it.SHA256 == d {
				out = append(out, repo.PackPath(&p))
			}
		}
	}
	for _, dr := range dl.DeltasTo(d) {
		out = append(out, dr.Path())
	}
	return out
}

// craft publishes version 3 through the overlay: version 2's tree changed
// by mutate, encoded as is (no sorting, no validation: the publisher would
// refuse most of these), with version 2's delivery list, in an index
// signed by keys. The manifest is pinned by digest like any other, so the
// signature, not the transport, decides whether the client reads it.
func (w *world) craft(mutate func(m *manifest.Manifest), keys ...repo.PrivateKey) {
	t := w.t
	t.Helper()
	m := w.fix.manifestOf(t, 2)
	m2 := w.fix.manifestOf(t, 2) // what v2's lean delivery list refers to
	m.Version = 3
	mutate(m)
	x := w.fix.parsedIndex(t)
	dl := w.fix.delivery(t, 2)
	// The crafted list spells out every digest (spec 1) and carries every
	// object inline, so that it does not depend on the crafted manifest.
	dl.Version, dl.Spec = 3, repo.DeliverySpec
	if !dl.AllObjects.SHA256.IsZero() {
		objs, err := repo.ParseObjects(w.fix.doc(t, dl.AllObjects), 2, m2.Content)
		if err != nil {
			t.Fatal(err)
		}
		dl.Objects, dl.AllObjects = objs, repo.BlobRef{}
	}
	mref := w.srv.putDoc(t, m.Bytes())
	dref := w.srv.putDoc(t, mustJSON(t, dl))
	x.Versions = append(x.Versions, repo.VersionRef{Version: 3, Created: m.Created, Manifest: mref, Delivery: dref, Entries: len(m.Entries)})
	w.srv.sign(t, x, keys...)
}

// addEntry inserts e into m keeping path order (a crafted but well-ordered manifest).
func addEntry(m *manifest.Manifest, e manifest.Entry) {
	m.Entries = append(m.Entries, e)
	m.Sort()
}

// tamper edits the current timestamp's JSON without signing it again.
func tamper(t testing.TB, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fix.meta[repo.TimestampPath], &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	return mustJSON(t, m)
}

func otherKey(t testing.TB) repo.PrivateKey {
	t.Helper()
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// endless answers 200 and streams zeros until the client goes away.
func endless(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 32<<10)
	for r.Context().Err() == nil {
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

// trickle sends five bytes a second: each inside any stall timeout, far
// under the rate floor (fetch.Options.MinRate).
func trickle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "1000000")
	w.WriteHeader(http.StatusOK)
	for r.Context().Err() == nil {
		if _, err := w.Write([]byte{'{'}); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-time.After(200 * time.Millisecond):
		case <-r.Context().Done():
		}
	}
}

// stallAfterHeaders sends headers, then nothing.
func stallAfterHeaders(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// appendBytes serves the repository file at path with n junk bytes after
// it, chunked (no Content-Length), so that only the streaming size check
// can notice.
func (s *server) appendBytes(path string, n int) http.HandlerFunc {
	return s.edited(path, func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0}, n)...) })
}

// edited serves the repository file at path changed by edit, chunked.
func (s *server) edited(path string, edit func([]byte) []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join(s.base, filepath.FromSlash(path)))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(edit(b))
	}
}

// serveFile answers with the repository file at other.
func (s *server) serveFile(other string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(s.base, filepath.FromSlash(other)))
	}
}

// wantErr asserts an error's class and that its message names the problem.
func wantErr(t testing.TB, err, class error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v naming %q", class, msg)
	}
	if !errors.Is(err, class) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v; want %v naming %q", err, class, msg)
	}
}

func isUpToDate(err error) bool { return errors.Is(err, errdefs.ErrUpToDate) }

func cmpNodes(a, b map[string]node) string { return cmp.Diff(a, b) }
