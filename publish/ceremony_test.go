package publish_test

import (
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

func keys(t *testing.T, n int) []repo.PrivateKey {
	t.Helper()
	out := make([]repo.PrivateKey, n)
	for i := range out {
		k, err := sigkey.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k
	}
	return out
}

func pubs(ks ...repo.PrivateKey) []repo.PublicKey {
	var out []repo.PublicKey
	for _, k := range ks {
		out = append(out, k.Public())
	}
	return out
}

// TestCeremony plays a deployment's release managers: three offline root
// keys (2 of 3), an offline targets key, one online key for snapshot and
// timestamp. Root 1 needs two root signatures; releases need the targets
// key, resign only the online one; root 2 revokes the targets key with
// two root signatures, and a laptop that trusts root 1 follows it all.
func TestCeremony(t *testing.T) {
	rk, tk, online := keys(t, 3), keys(t, 2), keys(t, 1)[0]
	dir := filepath.Join(t.TempDir(), "repo")
	draft := filepath.Join(t.TempDir(), "root.draft.json")
	now := time.Now()
	if _, err := publish.DraftRoot(dir, draft, publish.RootChange{
		Add: map[string][]repo.PublicKey{
			"root": pubs(rk...), "targets": pubs(tk[0]), "snapshot": pubs(online), "timestamp": pubs(online),
		},
		Threshold: map[string]int{"root": 2},
	}, now); err != nil {
		t.Fatal(err)
	}
	// k-1 root signatures.
	if err := publish.SignDraft(draft, rk[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.PublishRoot(dir, draft); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("root 1 with 1 of 2 signatures: got %v", err)
	}
	if err := publish.SignDraft(draft, rk[2]); err != nil {
		t.Fatal(err)
	}
	// The release key of the format before TUF signs root 1 too, so that
	// laptops that trust only it adopt root 1.
	legacy := keys(t, 1)[0]
	if err := publish.SignDraft(draft, legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.PublishRoot(dir, draft); err != nil {
		t.Fatal(err)
	}
	root1, err := os.ReadFile(filepath.Join(dir, repo.RootPathOf(1)))
	if err != nil {
		t.Fatal(err)
	}

	add := func(v int, key repo.PrivateKey, more ...repo.PrivateKey) error {
		tree := filepath.Join(t.TempDir(), "tree")
		if err := testtree.Build(tree, v); err != nil {
			t.Fatal(err)
		}
		_, err := publish.Add(context.Background(), tree, publish.Options{Repo: dir, Key: key, Keys: more, Channel: "stable"})
		return err
	}
	if err := add(1, online); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("a release with the online key only: got %v", err)
	}
	if err := add(1, tk[0], online); err != nil {
		t.Fatal(err)
	}
	if err := publish.Resign(publish.Options{Repo: dir, Key: online, Channel: "stable"}); err != nil {
		t.Fatalf("resign with the online key: %v", err)
	}

	// Root 2: the targets key is revoked, tk[1] replaces it.
	if _, err := publish.DraftRoot(dir, draft, publish.RootChange{
		Add:    map[string][]repo.PublicKey{"targets": pubs(tk[1])},
		Revoke: map[string][]repo.PublicKey{"targets": pubs(tk[0])},
	}, now); err != nil {
		t.Fatal(err)
	}
	for _, k := range rk[:2] {
		if err := publish.SignDraft(draft, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := publish.PublishRoot(dir, draft); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.PublishRoot(dir, draft); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("the same root twice: got %v", err)
	}
	if err := add(2, tk[0], online); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("a release with the revoked targets key: got %v", err)
	}
	if err := add(2, tk[1], online); err != nil {
		t.Fatal(err)
	}

	v, x, _, err := repo.OpenDir(context.Background(), dir, repo.Trust{Root: root1}, repo.Expect{Channel: "stable", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]uint64{1, 2}, versions(x)); d != "" || v.RootVersion() != 2 {
		t.Fatalf("a laptop at root 1: root %d, versions (-want +got):\n%s", v.RootVersion(), d)
	}
	lp := legacy.Public()
	if _, _, _, err := repo.OpenDir(context.Background(), dir, repo.Trust{Legacy: repo.Keyring{lp.ID: lp}}, repo.Expect{Channel: "stable", Now: time.Now()}); err != nil {
		t.Fatalf("a laptop with only the old release key: %v", err)
	}
	op := online.Public()
	if _, _, _, err := repo.OpenDir(context.Background(), dir, repo.Trust{Legacy: repo.Keyring{op.ID: op}}, repo.Expect{Channel: "stable", Now: time.Now()}); !errors.Is(err, errdefs.ErrBadSignature) {
		t.Fatalf("a laptop whose old key did not sign root 1: got %v", err)
	}
}

// TestDraftRootRefuses: a draft that leaves a role fewer keys than its
// threshold, or revokes a key the role does not list, is refused.
func TestDraftRootRefuses(t *testing.T) {
	k := keys(t, 2)
	draft := filepath.Join(t.TempDir(), "draft.json")
	all := map[string][]repo.PublicKey{"root": pubs(k[0]), "targets": pubs(k[0]), "snapshot": pubs(k[0]), "timestamp": pubs(k[0])}
	for _, tc := range []struct {
		name string
		c    publish.RootChange
	}{
		{"threshold above the keys", publish.RootChange{Add: all, Threshold: map[string]int{"root": 2}}},
		{"no key for a role", publish.RootChange{Add: map[string][]repo.PublicKey{"root": pubs(k[0])}}},
		{"revoke a key not listed", publish.RootChange{Add: all, Revoke: map[string][]repo.PublicKey{"targets": pubs(k[1])}}},
		{"threshold 0", publish.RootChange{Add: all, Threshold: map[string]int{"targets": 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := publish.DraftRoot(t.TempDir(), draft, tc.c, time.Now())
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// TestOfflineTargets: a release whose targets key never touches the build
// server: add leaves the targets unsigned in a draft, the key signs it
// elsewhere, and PublishTargets releases it only once the targets role's
// threshold is met.
func TestOfflineTargets(t *testing.T) {
	rk, tk, online := keys(t, 1)[0], keys(t, 1)[0], keys(t, 1)[0]
	dir := filepath.Join(t.TempDir(), "repo")
	rootDraft := filepath.Join(t.TempDir(), "root.draft.json")
	if _, err := publish.DraftRoot(dir, rootDraft, publish.RootChange{Add: map[string][]repo.PublicKey{
		"root": pubs(rk), "targets": pubs(tk), "snapshot": pubs(online), "timestamp": pubs(online),
	}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := publish.SignDraft(rootDraft, rk); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.PublishRoot(dir, rootDraft); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	if err := testtree.Build(tree, 1); err != nil {
		t.Fatal(err)
	}
	draft := filepath.Join(t.TempDir(), "targets.draft.json")
	o := publish.Options{Repo: dir, Key: online, Channel: "stable", TargetsDraft: draft}
	if _, err := publish.Add(context.Background(), tree, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, repo.TimestampPath)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("released before the targets were signed: %v", err)
	}
	o.TargetsDraft = ""
	if err := publish.PublishTargets(o, draft); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("unsigned targets: got %v", err)
	}
	if err := publish.SignDraft(draft, online); err != nil {
		t.Fatal(err)
	}
	if err := publish.PublishTargets(o, draft); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("targets signed by the online key: got %v", err)
	}
	if err := publish.SignDraft(draft, tk); err != nil {
		t.Fatal(err)
	}
	if err := publish.PublishTargets(o, draft); err != nil {
		t.Fatal(err)
	}
	if err := publish.PublishTargets(o, draft); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("the same targets twice: got %v", err)
	}
	root1, err := os.ReadFile(filepath.Join(dir, repo.RootPathOf(1)))
	if err != nil {
		t.Fatal(err)
	}
	_, x, _, err := repo.OpenDir(context.Background(), dir, repo.Trust{Root: root1}, repo.Expect{Channel: "stable", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]uint64{1}, versions(x)); d != "" {
		t.Fatalf("versions (-want +got):\n%s", d)
	}
}
