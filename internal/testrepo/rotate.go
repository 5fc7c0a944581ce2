package testrepo

import (
	"path/filepath"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
)

// RotateAll makes the next root of the repository at dir: every role moves
// from old to nu, signed by both (the old root's threshold and the new
// one's, TUF 5.3.4).
func RotateAll(t testing.TB, dir string, old, nu repo.PrivateKey) {
	t.Helper()
	m, err := publish.LoadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := metadata.Root().FromFile(filepath.Join(dir, repo.RootPath))
	if err != nil {
		t.Fatal(err)
	}
	_, oldID, err := repo.TUFKey(old.Public())
	if err != nil {
		t.Fatal(err)
	}
	mk, _, err := repo.TUFKey(nu.Public())
	if err != nil {
		t.Fatal(err)
	}
	m.Root.Signed.Version++
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if err := m.Root.Signed.AddKey(mk, role); err != nil {
			t.Fatal(err)
		}
		if err := m.Root.Signed.RevokeKey(oldID, role); err != nil {
			t.Fatal(err)
		}
	}
	m.Root.ClearSignatures()
	for _, k := range []repo.PrivateKey{old, nu} {
		if err := repo.SignMeta(m.Root, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.WriteRoot(prev); err != nil {
		t.Fatal(err)
	}
}
