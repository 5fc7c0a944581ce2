package security_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/tuftest"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/security"
)

// resign rewrites the daemon's record of slot sl as a release manager
// holding the trusted key could have signed it: edit changes the manifest
// header and the index, whose pin of the manifest follows. The slot's tree
// is untouched, so it still verifies against the rewritten manifest.
func resign(t *testing.T, r layout.Root, sl layout.Slot, key repo.PrivateKey, edit func(*manifest.Manifest, *repo.Index)) {
	t.Helper()
	raw, err := os.ReadFile(r.SlotManifest(sl))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Decode(raw, manifest.Policy{AllowSetuid: true, AllowDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := os.ReadFile(r.SlotIndex(sl))
	if err != nil {
		t.Fatal(err)
	}
	set := tuftest.FromBundle(t, ib)
	x := set.Index(t)
	x.Serial, x.Expires = uint64(set.Timestamp.Signed.Version), set.Timestamp.Signed.Expires
	serial, expires := x.Serial, x.Expires
	ref := x.Find(m.Version)
	x.Serial++ // a new publish
	edit(m, x)
	mb := m.Bytes()
	ref.Version, ref.Manifest.SHA256, ref.Manifest.Size = m.Version, digest.Of(mb), int64(len(mb))
	x.Versions = []repo.VersionRef{*ref}
	set.SetIndex(t, x)
	set.Timestamp.Signed.Version += int64(x.Serial - serial - 1)
	ttl := 24 * time.Hour
	if !x.Expires.Equal(expires) {
		ttl = time.Until(x.Expires)
	}
	ib = set.Bundle(t, tuftest.All(key), ttl)
	if err := os.WriteFile(r.SlotManifest(sl), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.SlotIndex(sl), ib, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestActivateOwnRecord: the security service decides on its own record,
// so a daemon that deletes or rewrites its records under var/lib/upgrade,
// or offers any version ever signed, activates nothing it should not.
func TestActivateOwnRecord(t *testing.T) {
	a, b := layout.SlotA, layout.SlotB
	for _, tc := range []struct {
		name string
		// setup runs with slot a (version 1) booted and slot b (version 2) built.
		setup  func(t *testing.T, svc *security.Service, r layout.Root, key repo.PrivateKey) layout.Slot
		want   error
		dbusOK string // the D-Bus error name the refusal maps to
	}{
		{"running slot's record deleted, no own record yet", func(t *testing.T, _ *security.Service, r layout.Root, _ repo.PrivateKey) layout.Slot {
			os.RemoveAll(r.SlotMetaDir(a))
			return b
		}, errdefs.ErrFailedPrecondition, dbusapi.ErrPrecondition},
		{"older version after the running slot's record is deleted", func(t *testing.T, svc *security.Service, r layout.Root, _ repo.PrivateKey) layout.Slot {
			activateAndBoot(t, svc, r, b)
			os.RemoveAll(r.SlotMetaDir(b))
			return a
		}, errdefs.ErrDowngrade, dbusapi.ErrDowngrade},
		{"older version after the running slot's record is garbled", func(t *testing.T, svc *security.Service, r layout.Root, _ repo.PrivateKey) layout.Slot {
			activateAndBoot(t, svc, r, b)
			os.WriteFile(r.SlotIndex(b), []byte("{}"), 0o644)
			return a
		}, errdefs.ErrDowngrade, dbusapi.ErrDowngrade},
		{"other channel", func(t *testing.T, _ *security.Service, r layout.Root, key repo.PrivateKey) layout.Slot {
			resign(t, r, b, key, func(m *manifest.Manifest, x *repo.Index) { m.Channel, x.Channel = "testing", "testing" })
			return b
		}, errdefs.ErrPolicy, dbusapi.ErrPolicy},
		{"other hardware", func(t *testing.T, _ *security.Service, r layout.Root, key repo.PrivateKey) layout.Slot {
			resign(t, r, a, key, func(m *manifest.Manifest, x *repo.Index) { m.Hardware, x.Hardware = "xo-4", "xo-4" })
			resign(t, r, b, key, func(m *manifest.Manifest, x *repo.Index) {
				m.Hardware, x.Hardware, x.Serial = "xo-9", "xo-9", x.Serial+1
			})
			return b
		}, errdefs.ErrPolicy, dbusapi.ErrPolicy},
		{"expired index", func(t *testing.T, _ *security.Service, r layout.Root, key repo.PrivateKey) layout.Slot {
			resign(t, r, b, key, func(_ *manifest.Manifest, x *repo.Index) { x.Expires = time.Now().Add(-time.Minute) })
			return b
		}, errdefs.ErrBadSignature, dbusapi.ErrBadSignature},
		{"index older than the running slot's", func(t *testing.T, _ *security.Service, r layout.Root, key repo.PrivateKey) layout.Slot {
			resign(t, r, a, key, func(_ *manifest.Manifest, x *repo.Index) { x.Serial += 10 })
			return b
		}, errdefs.ErrBadSignature, dbusapi.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, r, key := twoSlotsKey(t)
			sl := tc.setup(t, svc, r, key)
			before, _ := os.ReadFile(r.BootPointer())
			got, err := svc.Activate(context.Background(), sl, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Activate(%s) = %+v, %v; want %v", sl, got, err, tc.want)
			}
			if name := dbusapi.ErrorName(err); name != tc.dbusOK {
				t.Errorf("D-Bus error %s, want %s", name, tc.dbusOK)
			}
			if after, _ := os.ReadFile(r.BootPointer()); string(after) != string(before) {
				t.Errorf("a refused Activate wrote the pointer:\n%s", after)
			}
		})
	}
}

// TestActivateEstablishes: with the daemon's records intact, the first
// Activate establishes the running version by verification and succeeds.
func TestActivateEstablishes(t *testing.T) {
	svc, r, _ := twoSlotsKey(t)
	got, err := svc.Activate(context.Background(), layout.SlotB, 0)
	if err != nil || got.Version != 2 {
		t.Fatalf("Activate = %+v, %v", got, err)
	}
	p, err := bootptr.Read(r.BootPointer())
	if err != nil || p.Next != layout.SlotB || !p.Trial {
		t.Fatalf("pointer %+v, %v", p, err)
	}
}

func twoSlotsKey(t *testing.T) (*security.Service, layout.Root, repo.PrivateKey) {
	t.Helper()
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 1)
	if _, err := engine.Upgrade(context.Background(), cfg, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	boot(t, cfg.Root, layout.SlotA)
	return &security.Service{Root: cfg.Root, Keys: rp.Keys, Logf: t.Logf}, cfg.Root, rp.Key
}

// activateAndBoot activates sl, boots it and marks it good, as a machine does.
func activateAndBoot(t *testing.T, svc *security.Service, r layout.Root, sl layout.Slot) {
	t.Helper()
	if _, err := svc.Activate(context.Background(), sl, 0); err != nil {
		t.Fatal(err)
	}
	boot(t, r, sl)
	if _, err := svc.MarkGood(); err != nil {
		t.Fatal(err)
	}
}

// TestActivateRecheck: a change made to the slot after the security
// service verified it (a writer racing the check), before the pointer
// write, refuses the activation and leaves the pointer alone.
func TestActivateRecheck(t *testing.T) {
	for name, change := range map[string]func(t *testing.T, dir string){
		"new inode": func(t *testing.T, dir string) {
			p := dir + "/etc/os-release"
			os.Remove(p)
			if err := os.WriteFile(p, []byte("changed\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"chmod": func(t *testing.T, dir string) {
			if err := os.Chmod(dir+"/etc/os-release", 0o4755); err != nil {
				t.Fatal(err)
			}
		},
		"file added": func(t *testing.T, dir string) {
			if err := os.WriteFile(dir+"/etc/extra", nil, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			svc, r, _ := twoSlotsKey(t)
			security.SetBeforeRecheck(func(sl layout.Slot) { change(t, r.Slot(sl)) })
			defer security.SetBeforeRecheck(nil)
			before, _ := os.ReadFile(r.BootPointer())
			_, err := svc.Activate(context.Background(), layout.SlotB, 0)
			if !errors.Is(err, errdefs.ErrVerification) {
				t.Fatalf("Activate after a change behind the check: %v, want ErrVerification", err)
			}
			if after, _ := os.ReadFile(r.BootPointer()); string(after) != string(before) {
				t.Errorf("the pointer was written:\n%s", after)
			}
		})
	}
}
