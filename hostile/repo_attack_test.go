package hostile

import (
	"context"
	"net/http"
	"testing"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/internal/tuftest"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// attack is one row of the threat table: how the server (or a second,
// malicious mirror) lies, and the error the client must answer with.
type attack struct {
	name   string
	at     uint64 // version the root runs (default 1)
	setup  func(w *world)
	config func(w *world, c *engine.Config) // optional: e.g. a second mirror, the machine's hardware
	class  error                            // nil: the upgrade must succeed despite the attack
	msg    string                           // the error must name the problem
}

// TestRepositoryAttacks covers The Update Framework's threat model against a
// server the test controls. After each attack: a clear error, nothing changed
// outside the inactive slot (the active slot, the boot pointer, a canary
// next to the root), and a good attempt afterwards still succeeds.
func TestRepositoryAttacks(t *testing.T) {
	f := shared(t)
	good := func(w *world, c *engine.Config) {
		g := newServer(w.t, f.dir)
		g.sign(w.t, f.parsedIndex(w.t), f.key)
		c.Mirrors = append(c.Mirrors, g.URL)
	}
	// An upgrade from version 1 gets newtool's content, and the manifest,
	// from whichever blob the delivery list offers (object, pack, delta):
	// each attack hits every one of them.
	v2objects := func(w *world) []string { return f.carriers(w.t, 2, "usr/bin/newtool") }
	v2manifests := func(w *world) []string { return f.manifestCarriers(w.t, 2) }
	hookAll := func(w *world, paths []string, h func(p string) http.HandlerFunc) {
		for _, p := range paths {
			w.srv.hook(p, h(p))
		}
	}
	tests := []attack{
		// Arbitrary software.
		{name: "bad signature", class: errdefs.ErrBadSignature, msg: "not enough signatures, got 0, want 1",
			setup: func(w *world) {
				w.srv.put(w.t, repo.TimestampPath, tamper(w.t, func(m map[string]any) {
					sig := m["signatures"].([]any)[0].(map[string]any)
					s := []byte(sig["sig"].(string))
					s[5] ^= 1
					if s[5] > 'f' || s[5] < '0' || (s[5] > '9' && s[5] < 'a') {
						s[5] = '0'
					}
					sig["sig"] = string(s)
				}))
			}},
		{name: "missing signature", class: errdefs.ErrBadSignature, msg: "got 0, want 1",
			setup: func(w *world) {
				w.srv.put(w.t, repo.TimestampPath, tamper(w.t, func(m map[string]any) { m["signatures"] = []any{} }))
			}},
		{name: "unknown key", class: errdefs.ErrBadSignature, msg: "not enough signatures",
			setup: func(w *world) { w.srv.sign(w.t, f.parsedIndex(w.t), otherKey(w.t)) }},
		{name: "signature over other bytes", class: errdefs.ErrBadSignature, msg: "not enough signatures",
			setup: func(w *world) {
				w.srv.put(w.t, repo.TimestampPath, tamper(w.t, func(m map[string]any) {
					m["signed"].(map[string]any)["expires"] = time.Now().Add(365 * 24 * time.Hour).UTC().Format(time.RFC3339)
				}))
			}},
		{name: "crafted version signed by an unknown key", class: errdefs.ErrBadSignature, msg: "not enough signatures",
			setup: func(w *world) { w.craft(func(*manifest.Manifest) {}, otherKey(w.t)) }},
		// Rollback.
		{name: "older timestamp", class: errdefs.ErrBadSignature, msg: "new timestamp version 1 must be >= 2",
			setup: func(w *world) { w.srv.put(w.t, repo.TimestampPath, f.oldIndex) }},
		// Only older versions published: nothing to install (UpToDate), never
		// a downgrade.
		{name: "older version", at: 2, class: errdefs.ErrUpToDate, msg: "is older than the running 2",
			setup: func(w *world) {
				x := f.parsedIndex(w.t)
				x.Versions = x.Versions[:1]
				w.srv.sign(w.t, x, f.key)
			}},
		{name: "same timestamp version, other bytes", class: errdefs.ErrBadSignature, msg: "differs from the one seen before",
			setup: func(w *world) {
				set := f.set(w.t)
				set.Timestamp.Signed.Version-- // Files makes it 2 again
				files := set.Files(w.t, tuftest.Keys{Timestamp: []repo.PrivateKey{f.key}}, 48*time.Hour)
				w.srv.put(w.t, repo.TimestampPath, files[repo.TimestampPath])
			}},
		// Indefinite freeze.
		{name: "expired timestamp", class: errdefs.ErrBadSignature, msg: "timestamp.json is expired",
			setup: func(w *world) {
				x := f.parsedIndex(w.t)
				x.Expires = time.Now().Add(-time.Hour)
				w.srv.sign(w.t, x, f.key)
			}},
		{name: "replayed unexpired timestamp after a newer one", class: errdefs.ErrBadSignature, msg: "new timestamp version 2 must be >=",
			setup: func(w *world) {
				w.srv.sign(w.t, f.parsedIndex(w.t), f.key)
				if _, _, err := engine.Check(context.Background(), w.config(), 0); err != nil {
					w.t.Fatal(err)
				}
				w.srv.put(w.t, repo.TimestampPath, f.index)
			}},
		// Endless data.
		{name: "endless timestamp", class: errdefs.ErrTooLarge, msg: "more than 1048576 bytes",
			setup: func(w *world) { w.srv.hook(repo.TimestampPath, endless) }},
		{name: "manifest larger than signed", class: errdefs.ErrTooLarge, msg: "more than the signed",
			setup: func(w *world) {
				hookAll(w, v2manifests(w), func(p string) http.HandlerFunc { return w.srv.appendBytes(p, 100) })
			}},
		{name: "delivery list larger than signed", class: errdefs.ErrTooLarge, msg: "more than the signed",
			setup: func(w *world) {
				p := repo.ObjectPath(f.parsedIndex(w.t).Find(2).Delivery.SHA256)
				w.srv.hook(p, w.srv.appendBytes(p, 1))
			}},
		{name: "endless object", class: errdefs.ErrTooLarge, msg: "more than the signed",
			setup: func(w *world) { hookAll(w, v2objects(w), func(string) http.HandlerFunc { return endless }) }},
		// Slow retrieval (stall timeout 1 s in these tests).
		// A trickle with every byte inside the stall timeout: only the
		// rate floor (fetch.Options.MinRate) can end it.
		{name: "timestamp trickled at 5 bytes/s", class: errdefs.ErrNetwork, msg: "under the floor of 512 B/s",
			setup: func(w *world) { w.srv.hook(repo.TimestampPath, trickle) }},
		{name: "object stalls after headers", class: errdefs.ErrNetwork, msg: "no byte for 1s",
			setup: func(w *world) {
				hookAll(w, v2objects(w), func(string) http.HandlerFunc { return stallAfterHeaders })
			}},
		// Mix and match.
		{name: "mirror serves another version's manifest", class: errdefs.ErrCorrupt, msg: "< signed size",
			setup: func(w *world) {
				x := f.parsedIndex(w.t)
				hookAll(w, v2manifests(w), func(string) http.HandlerFunc {
					return w.srv.serveFile(repo.ObjectPath(x.Find(1).Manifest.SHA256))
				})
			}},
		{name: "index pins another version's manifest", class: errdefs.ErrBadSignature, msg: "manifest says version 1",
			setup: func(w *world) {
				x := f.parsedIndex(w.t)
				x.Versions[1].Manifest = x.Versions[0].Manifest
				w.srv.sign(w.t, x, f.key)
			}},
		{name: "mirror flips a byte of an object", class: errdefs.ErrCorrupt, msg: "digest",
			setup: func(w *world) {
				hookAll(w, v2objects(w), func(p string) http.HandlerFunc {
					return w.srv.edited(p, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
				})
			}},
		{name: "mirror serves another version's object", class: errdefs.ErrCorrupt, msg: "< signed size",
			setup: func(w *world) {
				hookAll(w, v2objects(w), func(string) http.HandlerFunc { return w.srv.serveFile(f.objectPath(w.t, 1, "usr/bin/httpd")) })
			}},
		// Malicious mirrors: the bad one is first, a good one second.
		{name: "bad mirror: unknown key", config: good,
			setup: func(w *world) { w.srv.sign(w.t, f.parsedIndex(w.t), otherKey(w.t)) }},
		{name: "bad mirror: rolled-back timestamp", config: good,
			setup: func(w *world) { w.srv.put(w.t, repo.TimestampPath, f.oldIndex) }},
		{name: "bad mirror: endless object", config: good,
			setup: func(w *world) { hookAll(w, v2objects(w), func(string) http.HandlerFunc { return endless }) }},
		{name: "bad mirror: wrong object", config: good,
			setup: func(w *world) {
				hookAll(w, v2objects(w), func(string) http.HandlerFunc { return w.srv.serveFile(f.objectPath(w.t, 1, "usr/bin/httpd")) })
			}},
		{name: "bad mirror: stall", config: good,
			setup: func(w *world) {
				hookAll(w, v2objects(w), func(string) http.HandlerFunc { return stallAfterHeaders })
			}},
		// Wrong software.
		{name: "other channel", class: errdefs.ErrPolicy, msg: `channel "beta"`,
			setup: func(w *world) {
				x := f.parsedIndex(w.t)
				x.Channel = "beta"
				w.srv.sign(w.t, x, f.key)
			}},
		{name: "other hardware (index)", class: errdefs.ErrPolicy, msg: `hardware "xo-4"`,
			config: func(w *world, c *engine.Config) { c.Hardware = "xo-1.75" },
			setup: func(w *world) {
				x := f.parsedIndex(w.t)
				x.Hardware = "xo-4"
				w.srv.sign(w.t, x, f.key)
			}},
		{name: "other hardware (manifest)", class: errdefs.ErrPolicy, msg: `hardware "xo-4"`,
			config: func(w *world, c *engine.Config) { c.Hardware = "xo-1.75" },
			setup:  func(w *world) { w.craft(func(m *manifest.Manifest) { m.Hardware = "xo-4" }, f.key) }},
	}
	runAttacks(t, tests)
}

// runAttacks runs each attack against a fresh root.
func runAttacks(t *testing.T, tests []attack) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.at
			if at == 0 {
				at = 1
			}
			w := newWorld(t, at)
			tc.setup(w)
			cfg := w.config()
			if tc.config != nil {
				tc.config(w, cfg)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := engine.Upgrade(ctx, cfg, engine.Options{})
			if tc.class == nil {
				if err != nil {
					t.Fatalf("a good mirror was available, yet: %v", err)
				}
				if res.Version != 2 {
					t.Fatalf("installed version %d, want 2", res.Version)
				}
				w.checkUntouched()
				return
			}
			wantErr(t, err, tc.class, tc.msg)
			w.checkUntouched()
			w.goodAttempt()
		})
	}
}
