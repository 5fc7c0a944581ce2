package proptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
	"laptop.org/upgrade/security"
)

// chain is the number of versions per input (PROPTEST_CHAIN, default 4):
// chain-1 pairs, one publish and one upgrade each, provisioning paid once
// per input. The fuzzing engine takes an input running past 10 s for a
// hung worker, so make fuzz runs chains of 2. A seed's first pair is the
// same whatever the chain's length.
func chain(t testing.TB) int { return envInt(t, "PROPTEST_CHAIN", 4, 2) }

// inputs is how many seeds the plain test runs: PROPTEST_PAIRS/(chain-1),
// PROPTEST_PAIRS defaulting to 9 (make test sets 300; under the race
// detector of make gotest a pair costs several times more).
func inputs(t testing.TB) int {
	n, c := envInt(t, "PROPTEST_PAIRS", 9, 0), chain(t)
	return (n + c - 2) / (c - 1)
}

func envInt(t testing.TB, name string, def, min int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min {
		t.Fatalf("%s=%q: want a number from %d", name, s, min)
	}
	return n
}

// FuzzUpgradeChain: each input is the seed of a random chain of versions
// (each pair of consecutive versions differs in random ways), which go
// through the real publisher, a machine provisioned at version 1 and a
// real upgrade to each next version, booting the new slot each time.
// After each upgrade the new slot must equal its version's tree entry for
// entry (type, mode, owner, content, target, device, xattrs, hard-link
// groups), pass the security service's verification, and the active slot
// must not have changed at all. `go test -fuzz` keeps every failing seed
// under testdata/fuzz/FuzzUpgradeChain, where plain `go test` replays it.
func FuzzUpgradeChain(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Fatal("the property test needs root: owners, device nodes, security.capability")
	}
	for i := range inputs(f) {
		f.Add(uint64(i))
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		upgradeChain(t, seed)
	})
}

// policy allows everything a tree of the generator holds.
var policy = manifest.Policy{AllowSetuid: true, AllowDevices: true}

func upgradeChain(t *testing.T, seed uint64) {
	ctx := context.Background()
	n := chain(t)
	versions := NewChain(seed, n, aclsSupported(t))
	// Not t.TempDir: a fuzz input's name holds '#', which a file:// URL cannot.
	base, err := os.MkdirTemp(os.Getenv("PROPTEST_TMPDIR"), "proptest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	key, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "repo")
	publishTree := func(v int) string {
		tree := filepath.Join(base, fmt.Sprintf("tree%d", v))
		if err := versions[v-1].Build(tree); err != nil {
			t.Fatalf("seed %d: build version %d: %v", seed, v, err)
		}
		if _, err := publish.Add(ctx, tree, publish.Options{Repo: dir, Key: key, Channel: "stable", AllowDevices: policy.AllowDevices}); err != nil {
			t.Fatalf("seed %d: publish version %d: %v", seed, v, err)
		}
		return tree
	}
	tree := publishTree(1)
	lr, err := layout.New(filepath.Join(base, "root"))
	if err != nil {
		t.Fatal(err)
	}
	pol := policy
	cfg := &engine.Config{Root: lr, Mirrors: []string{"file://" + dir}, Channel: "stable",
		Keys: repo.Keyring{key.ID: key.Public()}, Policy: &pol, Workers: 2}
	if _, err := engine.Provision(ctx, cfg, 1); err != nil {
		t.Fatalf("seed %d: provision version 1: %v", seed, err)
	}
	sameTree(t, seed, "slot a after provisioning", tree, lr.Slot(layout.SlotA))
	svc := &security.Service{Root: lr, Keys: cfg.Keys, Policy: &pol}
	for v := 2; v <= n; v++ {
		tree = publishTree(v)
		active, err := lr.CurrentSlot()
		if err != nil {
			t.Fatal(err)
		}
		before := testtree.Snapshot(t, lr.Slot(active), nil)
		res, err := engine.Upgrade(ctx, cfg, engine.Options{})
		if err != nil {
			t.Fatalf("seed %d: upgrade to version %d: %v", seed, v, err)
		}
		sameTree(t, seed, fmt.Sprintf("version %d in slot %s", v, res.Slot), tree, lr.Slot(res.Slot))
		if _, err := svc.Activate(ctx, res.Slot, 0); err != nil {
			t.Fatalf("seed %d: version %d: security service: %v", seed, v, err)
		}
		if d := cmp.Diff(before, testtree.Snapshot(t, lr.Slot(active), nil)); d != "" {
			t.Fatalf("seed %d: the upgrade to version %d changed the active slot %s (-before +after):\n%s", seed, v, active, d)
		}
		boot(t, lr, res.Slot)
		if _, err := svc.MarkGood(); err != nil {
			t.Fatal(err)
		}
	}
}

// boot makes the root look booted from slot s (the initrd's job).
func boot(t *testing.T, r layout.Root, s layout.Slot) {
	t.Helper()
	tmp := r.Current() + ".tmp"
	if err := os.Symlink(string(s), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.Current()); err != nil {
		t.Fatal(err)
	}
}

// sameTree fails unless dir holds exactly what tree holds.
func sameTree(t *testing.T, seed uint64, what, tree, dir string) {
	t.Helper()
	want, err := manifest.Scan(context.Background(), tree)
	if err != nil {
		t.Fatal(err)
	}
	got, err := manifest.Scan(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want.Entries, got.Entries); d != "" {
		t.Fatalf("seed %d: %s differs from its tree (-want +got):\n%s", seed, what, d)
	}
}

// aclsSupported: the generator sets POSIX ACLs with setfacl (the acl
// package, scripts/deps.d/proptest.txt); a missing setfacl fails the test.
func aclsSupported(t *testing.T) bool {
	if _, err := exec.LookPath("setfacl"); err != nil {
		t.Fatalf("setfacl not installed (make deps): %v", err)
	}
	return true
}
