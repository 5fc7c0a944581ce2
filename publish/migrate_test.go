package publish_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// legacyRepo publishes version 1 and turns the repository into one of the
// format before TUF: its TUF metadata and target files gone, an index.json
// signed by signer listing version 1 at serial 7.
func legacyRepo(t *testing.T, k, signer repo.PrivateKey) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	tree := filepath.Join(t.TempDir(), "tree1")
	if err := testtree.Build(tree, 1); err != nil {
		t.Fatal(err)
	}
	o := publish.Options{Repo: dir, Key: k, Channel: "stable"}
	if _, err := publish.Add(context.Background(), tree, o); err != nil {
		t.Fatal(err)
	}
	_, x, err := publish.LoadIndex(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"*.json", "targets"} {
		m, _ := filepath.Glob(filepath.Join(dir, g))
		for _, p := range m {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	x.Serial, x.Timestamp, x.Expires = 7, now, now.Add(publish.LegacyTTL)
	b, err := repo.SignLegacyIndex(x, signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, repo.IndexPath), b, 0644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMigrateLegacy: the first add to a repository of the format before
// TUF carries its versions into TUF targets in the same signed step, with
// a first root that laptops knowing only the old key adopt, and keeps
// index.json current for laptops whose software predates TUF.
func TestMigrateLegacy(t *testing.T) {
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := legacyRepo(t, k, k)
	tree := filepath.Join(t.TempDir(), "tree2")
	if err := testtree.Build(tree, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Add(context.Background(), tree, publish.Options{Repo: dir, Key: k, Channel: "stable"}); err != nil {
		t.Fatal(err)
	}

	// A laptop that trusts only the old key.
	pub := k.Public()
	now := time.Now()
	_, x, _, err := repo.OpenDir(context.Background(), dir, repo.Trust{Legacy: repo.Keyring{pub.ID: pub}}, repo.Expect{Channel: "stable", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]uint64{1, 2}, versions(x)); d != "" {
		t.Errorf("TUF targets (-want +got):\n%s", d)
	}
	for _, v := range x.Versions {
		for _, p := range []string{
			repo.TargetFilePath(repo.TargetName(v.Version, repo.KindManifest), v.Manifest.Stored),
			repo.TargetFilePath(repo.TargetName(v.Version, repo.KindDelivery), v.Delivery.Stored),
		} {
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
				t.Errorf("target file of version %d: %v", v.Version, err)
			}
		}
	}

	// A laptop whose software predates TUF.
	b, err := os.ReadFile(filepath.Join(dir, repo.IndexPath))
	if err != nil {
		t.Fatal(err)
	}
	lx, err := repo.OpenLegacyIndex(context.Background(), b, repo.Keyring{pub.ID: pub}, repo.Expect{Channel: "stable", Now: now}, &repo.SeenIndex{Serial: 7})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]uint64{1, 2}, versions(lx)); d != "" || lx.Serial != 8 {
		t.Errorf("index.json: serial %d (want 8), versions (-want +got):\n%s", lx.Serial, d)
	}

	// resign keeps both fresh.
	if err := publish.Resign(publish.Options{Repo: dir, Key: k, Channel: "stable"}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, repo.IndexPath))
	if lx, err = repo.OpenLegacyIndex(context.Background(), b, repo.Keyring{pub.ID: pub}, repo.Expect{Channel: "stable", Now: now}, nil); err != nil || lx.Serial != 9 {
		t.Errorf("index.json after resign: %v, serial %v", err, lx)
	}
}

// TestMigrateLegacyOtherKey: an index.json the key given did not sign is
// refused before anything is written: no half-made TUF repository.
func TestMigrateLegacyOtherKey(t *testing.T) {
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := legacyRepo(t, k, other)
	before, err := os.ReadFile(filepath.Join(dir, repo.IndexPath))
	if err != nil {
		t.Fatal(err)
	}
	err = publish.Resign(publish.Options{Repo: dir, Key: k, Channel: "stable"})
	if !errors.Is(err, errdefs.ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, repo.IndexPath))
	if !bytes.Equal(before, after) {
		t.Error("index.json changed")
	}
	for _, p := range []string{repo.RootPath, repo.RootPathOf(1), repo.TimestampPath} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written: %v", p, err)
		}
	}
}

func versions(x *repo.Index) []uint64 {
	var out []uint64
	for _, v := range x.Versions {
		out = append(out, uint64(v.Version))
	}
	return out
}
