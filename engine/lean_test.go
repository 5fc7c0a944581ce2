package engine_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// Both delivery list formats bring a machine to exactly the new version,
// by the same plan: the lean list (spec 2, the default) names contents by
// manifest entry, and its full object list does too (provisioning needs
// it); spec 1, for clients older than spec 2, spells out every digest.
func TestDeliverySpecs(t *testing.T) {
	ctx := context.Background()
	plans := map[int][2]int64{}
	for _, spec := range []int{repo.DeliverySpec, repo.DeliverySpecLean} {
		base := t.TempDir()
		os.Chmod(base, 0o755)
		k, err := sigkey.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		rp := &testrepo.Repo{Dir: filepath.Join(base, "repo"), Key: k, Keys: repo.Keyring{k.ID: k.Public()}, DeliverySpec: spec}
		for v := 1; v <= 2; v++ {
			tree := filepath.Join(base, "tree", string(rune('0'+v)))
			if err := testtree.Build(tree, v); err != nil {
				t.Fatal(err)
			}
			rp.Trees = append(rp.Trees, tree)
			rp.Publish(t, tree)
		}
		url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))

		// Provisioning version 2 needs every object: the full list.
		_, cfg := rp.Provision(t, url, 2)
		inst, err := engine.LoadInstalled(cfg.Root, layout.SlotA)
		if err != nil || inst.Version != 2 {
			t.Fatalf("spec %d: provisioned %v %v", spec, inst, err)
		}

		_, cfg = rp.Provision(t, url, 1)
		rm, _, target := openNewest(t, ctx, cfg)
		if target.Delivery.Lean() || target.Delivery.Spec != spec {
			t.Fatalf("spec %d: target's list is spec %d, resolved %v", spec, target.Delivery.Spec, !target.Delivery.Lean())
		}
		plan := planFromA(t, ctx, cfg, rm, target)
		plans[spec] = [2]int64{plan.DownloadBytes, int64(len(plan.Blobs))}
		if _, err := engine.Upgrade(ctx, cfg, engine.Options{}); err != nil {
			t.Fatalf("spec %d: %v", spec, err)
		}
		checkSlotB(t, ctx, cfg, rp.Trees[1])
	}
	if plans[repo.DeliverySpec] != plans[repo.DeliverySpecLean] {
		t.Fatalf("plans (bytes, blobs) differ: spec 1 %v, spec 2 %v", plans[repo.DeliverySpec], plans[repo.DeliverySpecLean])
	}
}
