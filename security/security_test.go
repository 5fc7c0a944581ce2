package security_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/security"
)

// twoSlots makes a root with version 1 verified in slot a and version 2
// verified in slot b (recorded, but not activated).
func twoSlots(t *testing.T) (*security.Service, layout.Root) {
	t.Helper()
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	if _, err := engine.Upgrade(context.Background(), cfg, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	return &security.Service{Root: cfg.Root, Keys: rp.Keys, Logf: t.Logf}, cfg.Root
}

// boot makes the root look booted from slot s (the initrd's job).
func boot(t *testing.T, r layout.Root, s layout.Slot) {
	t.Helper()
	tmp := r.Current() + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(string(s), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.Current()); err != nil {
		t.Fatal(err)
	}
}

// TestRollback: going back one step from every pointer state a machine can
// be in. The pending case is the one that matters most: an upgrade that
// never booted must be withdrawn, not made the known-good slot.
func TestRollback(t *testing.T) {
	svc, r := twoSlots(t)
	a, b := layout.SlotA, layout.SlotB
	for _, tc := range []struct {
		name    string
		booted  layout.Slot
		before  bootptr.Pointer
		want    bootptr.Pointer
		wantRet layout.Slot
		wantVer layout.Version
	}{
		{"pending upgrade is withdrawn", a,
			bootptr.Pointer{Next: b, Good: a, Trial: true, Tries: 3},
			bootptr.Pointer{Next: a, Good: a}, a, 1},
		{"booted on trial goes back to the good slot", b,
			bootptr.Pointer{Next: b, Good: a, Trial: true, Tries: 2},
			bootptr.Pointer{Next: a, Good: a}, a, 1},
		{"from a good slot the other boots on trial", b,
			bootptr.Pointer{Next: b, Good: b},
			bootptr.Pointer{Next: a, Good: b, Trial: true, Tries: security.DefaultTries}, a, 1},
		{"a slot that failed gets boot counting again", a,
			bootptr.Pointer{Next: a, Good: a, Failed: b},
			bootptr.Pointer{Next: b, Good: a, Trial: true, Tries: security.DefaultTries}, b, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			boot(t, r, tc.booted)
			tc.before.Seq = 10
			if err := bootptr.Write(r.BootPointer(), tc.before); err != nil {
				t.Fatal(err)
			}
			got, err := svc.Rollback(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got.Slot != tc.wantRet || got.Version != tc.wantVer {
				t.Errorf("Rollback() = slot %s version %d, want %s %d", got.Slot, got.Version, tc.wantRet, tc.wantVer)
			}
			p, err := bootptr.Read(r.BootPointer())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, p, cmpopts.IgnoreFields(bootptr.Pointer{}, "Seq")); diff != "" {
				t.Errorf("pointer (-want +got):\n%s", diff)
			}
			if p.Seq <= tc.before.Seq {
				t.Errorf("seq %d after %d: every write must increase it", p.Seq, tc.before.Seq)
			}
		})
	}

	t.Run("other slot does not verify", func(t *testing.T) {
		boot(t, r, a)
		before := bootptr.Pointer{Next: a, Good: a, Seq: 20}
		if err := bootptr.Write(r.BootPointer(), before); err != nil {
			t.Fatal(err)
		}
		// A new inode: never write through a link the slots may share.
		p := r.Slot(b) + "/etc/os-release"
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("tampered\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := svc.Rollback(context.Background())
		if err == nil || !strings.Contains(err.Error(), "cannot roll back") || !strings.Contains(err.Error(), "etc/os-release") {
			t.Errorf("Rollback to a tampered slot: %v, want a refusal naming the bad path", err)
		}
		if p, _ := bootptr.Read(r.BootPointer()); p != before {
			t.Errorf("a refused rollback wrote the pointer: %+v", p)
		}
	})
}
