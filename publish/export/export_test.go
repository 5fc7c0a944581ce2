package export_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/publish/export"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testrepo.Cleanup()
	os.Exit(code)
}

// contents returns the file contents of a version's manifest.
func contents(t *testing.T, r *testrepo.Repo, v layout.Version) (map[digest.Digest]bool, *repo.VersionRef) {
	t.Helper()
	_, idx, _, err := repo.OpenDir(t.Context(), r.Dir, repo.Trust{Legacy: r.Keys}, repo.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	ref := idx.Find(layout.Version(v))
	m, err := manifest.Scan(context.Background(), r.Trees[v-1])
	if err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{}
	for _, e := range m.Entries {
		if e.Type == manifest.File {
			out[e.SHA256] = true
		}
	}
	return out, ref
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// objectsIn lists the digests named by objects/ files under dir.
func objectsIn(t *testing.T, dir string) map[digest.Digest]bool {
	t.Helper()
	out := map[digest.Digest]bool{}
	filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		h, err := digest.Parse(strings.TrimSuffix(d.Name(), ".zst"))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[h] = true
		return nil
	})
	return out
}

// An export of version 2 for machines at version 1 holds only what such
// an upgrade fetches, and a machine at version 1 upgrades from it as its
// only mirror (the repository it was provisioned from is not offered).
func TestExportUpgradeFromStick(t *testing.T) {
	r := testrepo.New(t, 2)
	stick := filepath.Join(t.TempDir(), "stick")
	res, err := export.Export(context.Background(), export.Options{Repo: r.Dir, To: stick, Keys: r.Keys, Versions: []layout.Version{2}, From: []layout.Version{1}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Newest || res.Copied != res.Files || res.Files == 0 {
		t.Errorf("result %+v", res)
	}

	c1, ref1 := contents(t, r, 1)
	c2, ref2 := contents(t, r, 2)
	docs := map[digest.Digest]bool{ref2.Manifest.SHA256: true, ref2.Delivery.SHA256: true}
	got := objectsIn(t, stick)
	newContents := 0
	for h := range got {
		switch {
		case docs[h]:
		case ref1.Manifest.SHA256 == h || ref1.Delivery.SHA256 == h:
			t.Errorf("object %s: version 1's own documents are not needed", h)
		case !c2[h]:
			t.Errorf("object %s: not a content of version 2", h)
		case c1[h]:
			t.Errorf("object %s: a content version 1 already has", h)
		default:
			newContents++
		}
	}
	if !got[ref2.Manifest.SHA256] || !got[ref2.Delivery.SHA256] {
		t.Errorf("version 2's manifest or delivery list is missing")
	}
	_, _, files, err := repo.OpenDir(t.Context(), r.Dir, repo.Trust{Legacy: r.Keys}, repo.Expect{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !bytesEqual(readFile(t, filepath.Join(stick, f)), readFile(t, filepath.Join(r.Dir, f))) {
			t.Errorf("metadata %s must be copied as signed", f)
		}
	}
	t.Logf("%d files, %d bytes; %d objects of new contents", res.Files, res.Bytes, newContents)

	root, _ := r.Provision(t, "file://"+r.Dir, 1)
	cfg := r.Config(t, root, "file://"+stick)
	up, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	if err != nil {
		t.Fatalf("upgrade from the stick: %v", err)
	}
	if up.Version != 2 || up.From != 1 {
		t.Fatalf("upgraded %d -> %d, want 1 -> 2", up.From, up.Version)
	}
	if b := readFile(t, filepath.Join(root, string(up.Slot), "etc/os-release")); !strings.Contains(string(b), "VERSION_ID=2") {
		t.Errorf("slot %s os-release: %s", up.Slot, b)
	}

	// The same export again copies nothing; a whole export adds what other
	// machines (provisioning, drift) may need.
	again, err := export.Export(context.Background(), export.Options{Repo: r.Dir, To: stick, Keys: r.Keys, Versions: []layout.Version{2}, From: []layout.Version{1}})
	if err != nil || again.Copied != 0 || again.Files != res.Files {
		t.Errorf("second export: %+v, %v", again, err)
	}
	whole, err := export.Export(context.Background(), export.Options{Repo: r.Dir, To: stick, Keys: r.Keys})
	if err != nil {
		t.Fatal(err)
	}
	all := objectsIn(t, stick)
	for h := range c2 {
		if !all[h] {
			t.Errorf("whole export lacks the object of content %s", h)
		}
	}
	if whole.Files <= res.Files {
		t.Errorf("whole export: %d files, the one for version 1 alone %d", whole.Files, res.Files)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// Provisioning from a stick made for machines with nothing (base 0).
func TestExportProvision(t *testing.T) {
	r := testrepo.New(t, 2)
	stick := filepath.Join(t.TempDir(), "stick")
	if _, err := export.Export(context.Background(), export.Options{Repo: r.Dir, To: stick, Keys: r.Keys, From: []layout.Version{0}}); err != nil {
		t.Fatal(err)
	}
	root, _ := r.Provision(t, "file://"+stick, 0)
	if b := readFile(t, filepath.Join(root, "a/etc/os-release")); !strings.Contains(string(b), "VERSION_ID=2") {
		t.Errorf("os-release: %s", b)
	}
}

func TestExportRefuses(t *testing.T) {
	r := testrepo.New(t, 2)
	other, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    export.Options
		want error
		text string
	}{
		{"unknown version", export.Options{Versions: []layout.Version{7}}, errdefs.ErrNotFound, "version 7 is not in the index"},
		{"unknown base", export.Options{Versions: []layout.Version{2}, From: []layout.Version{9}}, errdefs.ErrNotFound, "base version 9: not in the index"},
		{"expired", export.Options{Now: func() time.Time { return time.Now().Add(400 * 24 * time.Hour) }}, errdefs.ErrBadSignature, "upgrade-publish resign"},
		{"untrusted key", export.Options{Keys: repo.Keyring{other.ID: other.Public()}}, errdefs.ErrBadSignature, "not signed by a trusted key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.Repo, o.To = r.Dir, filepath.Join(t.TempDir(), "stick")
			if o.Keys == nil {
				o.Keys = r.Keys
			}
			_, err := export.Export(context.Background(), o)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.text)
			}
			if _, err := os.Stat(filepath.Join(o.To, repo.TimestampPath)); err == nil {
				t.Errorf("a refused export wrote a timestamp")
			}
		})
	}
}

func TestParseVersions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []layout.Version
		bad  bool
	}{
		{"", nil, false},
		{"all", nil, false},
		{"2", []layout.Version{2}, false},
		{"1, 3", []layout.Version{1, 3}, false},
		{"0,2", []layout.Version{0, 2}, false},
		{"2,x", nil, true},
		{"-1", nil, true},
	} {
		got, err := export.ParseVersions(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, diff)
		}
	}
}

// A disk that already holds a newer index of the channel keeps it: an
// export from an older copy of the repository is refused.
func TestExportKeepsNewerIndex(t *testing.T) {
	r := testrepo.New(t, 2)
	newer := testrepo.New(t, 2)
	if err := publish.Resign(publish.Options{Repo: newer.Dir, Key: r.Key, Channel: testrepo.Channel}); err != nil {
		t.Fatal(err)
	}
	stick := filepath.Join(t.TempDir(), "stick")
	if _, err := export.Export(context.Background(), export.Options{Repo: newer.Dir, To: stick, Keys: r.Keys}); err != nil {
		t.Fatal(err)
	}
	want := readFile(t, filepath.Join(stick, repo.TimestampPath))
	_, err := export.Export(context.Background(), export.Options{Repo: r.Dir, To: stick, Keys: r.Keys})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "holds a newer index") {
		t.Fatalf("export of the older repository: got %v", err)
	}
	if got := readFile(t, filepath.Join(stick, repo.TimestampPath)); !bytesEqual(got, want) {
		t.Errorf("the newer index on the disk was replaced")
	}
}
