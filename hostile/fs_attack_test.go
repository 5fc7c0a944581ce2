package hostile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
)

// TestFilesystemAttacks publishes crafted version-3 manifests in an index
// validly signed with the trusted key, so that the decoder and planner, not
// the signature, must stop them: nothing may be written outside the
// inactive slot whatever the manifest says.
func TestFilesystemAttacks(t *testing.T) {
	f := shared(t)
	file := func(p string) manifest.Entry {
		e := *f.manifestOf(t, 2).Find("usr/bin/newtool")
		e.Path = p
		return e
	}
	add := func(es ...manifest.Entry) func(*world) {
		return func(w *world) {
			w.craft(func(m *manifest.Manifest) {
				for _, e := range es {
					addEntry(m, e)
				}
			}, f.key)
		}
	}
	raw := func(edit func(m *manifest.Manifest)) func(*world) {
		return func(w *world) { w.craft(edit, f.key) }
	}
	tests := []attack{
		{name: "dotdot", class: errdefs.ErrUnsafePath, msg: `".." component`,
			setup: add(file("usr/../../canary/evil"))},
		{name: "absolute path", class: errdefs.ErrUnsafePath, msg: "absolute path",
			setup: add(file("/tmp/evil"))},
		{name: "NUL in a name", class: errdefs.ErrUnsafePath, msg: "contains NUL",
			setup: add(file("usr/bin/ev\x00il"))},
		{name: "overlong name", class: errdefs.ErrUnsafePath, msg: "a name of 300 bytes",
			setup: add(file("usr/bin/" + strings.Repeat("n", 300)))},
		{name: "overlong path", class: errdefs.ErrUnsafePath, msg: "path of 4104 bytes",
			setup: add(file("usr/" + strings.Repeat("d/", 2050)))},
		{name: "empty component", class: errdefs.ErrUnsafePath, msg: "empty component",
			setup: add(file("usr//evil"))},
		{name: "duplicate entry", class: errdefs.ErrInvalidArgument, msg: "out of order or duplicate",
			setup: raw(func(m *manifest.Manifest) {
				e := *m.Find("usr/bin/newtool")
				e.Mode = 04755
				m.Entries = append(m.Entries, e)
				m.Sort()
			})},
		{name: "file under a symlink", class: errdefs.ErrUnsafePath, msg: "parent usr/evil is not a directory",
			setup: add(manifest.Entry{Path: "usr/evil", Type: manifest.Symlink, Mode: 0777, Target: "../../../canary"}, file("usr/evil/x"))},
		{name: "file under a file", class: errdefs.ErrUnsafePath, msg: "parent usr/bin/newtool is not a directory",
			setup: add(file("usr/bin/newtool/x"))},
		{name: "directory under a symlinked top", class: errdefs.ErrUnsafePath, msg: "parent sbin is not a directory",
			setup: add(manifest.Entry{Path: "sbin/evil", Type: manifest.Dir, Mode: 0755})},
		{name: "parent missing", class: errdefs.ErrUnsafePath, msg: "parent nowhere is not a directory",
			setup: add(file("nowhere/evil"))},
		{name: "hard link to a path outside the manifest", class: errdefs.ErrInvalidArgument, msg: "hard link to ../../canary/keep",
			setup: add(func() manifest.Entry { e := file("usr/bin/evil"); e.Link = "../../canary/keep"; return e }())},
		{name: "setuid file the policy forbids", class: errdefs.ErrPolicy, msg: "bin/su: setuid/setgid file",
			config: func(w *world, c *engine.Config) { c.Policy = &manifest.Policy{AllowSetuid: false} },
			setup:  add(func() manifest.Entry { e := file("usr/bin/evil"); e.Mode = 04755; return e }())},
		{name: "device node", class: errdefs.ErrPolicy, msg: "usr/evil: block device",
			setup: add(manifest.Entry{Path: "usr/evil", Type: manifest.Block, Mode: 0666, Rdev: 8<<8 | 0})},
		{name: "fifo", class: errdefs.ErrPolicy, msg: "usr/evil: fifo",
			setup: add(manifest.Entry{Path: "usr/evil", Type: manifest.Fifo, Mode: 0666})},
		{name: "mode beyond 07777", class: errdefs.ErrInvalidArgument, msg: "bits beyond 07777",
			setup: add(func() manifest.Entry { e := file("usr/bin/evil"); e.Mode = 0100755; return e }())},
		{name: "untracked xattr", class: errdefs.ErrInvalidArgument, msg: `xattr "trusted.evil"`,
			setup: add(func() manifest.Entry {
				e := file("usr/bin/evil")
				e.Xattrs = []manifest.Xattr{{Name: "trusted.evil", Value: []byte("x")}}
				return e
			}())},
		{name: "more entries than the machine accepts", class: errdefs.ErrTooLarge, msg: "entries",
			config: func(w *world, c *engine.Config) { c.Policy = &manifest.Policy{AllowSetuid: true, MaxEntries: 10} },
			setup:  add()},
		{name: "content missing from the delivery list", class: errdefs.ErrCorrupt, msg: "no object for usr/bin/evil",
			setup: add(func() manifest.Entry { e := file("usr/bin/evil"); e.SHA256 = digest.Of([]byte("nowhere")); return e }())},
	}
	runAttacks(t, tests)
}

// TestDirectorySwappedForSymlink swaps a directory of the inactive slot for a
// symlink to the canary while the apply runs (from the engine's own progress
// callback, so the moment is deterministic): the apply must fail, write
// nothing through the symlink, and the next attempt must repair the slot.
func TestDirectorySwappedForSymlink(t *testing.T) {
	for _, dir := range []string{"usr/share", "usr/lib"} {
		t.Run(dir, func(t *testing.T) {
			w := newWorld(t, 1)
			w.srv.sign(t, w.fix.parsedIndex(t), w.fix.key)
			canary := filepath.Join(w.dir, "canary")
			slot := filepath.Join(w.root, "b")
			var once sync.Once
			swapErr := errors.New("not swapped")
			_, err := engine.Upgrade(context.Background(), w.config(), engine.Options{Progress: func(p engine.Progress) {
				if p.Phase != engine.PhaseApplying || p.ItemsDone < 1 {
					return
				}
				once.Do(func() { swapErr = swapForSymlink(filepath.Join(slot, dir), canary) })
			}})
			if swapErr != nil {
				t.Fatalf("swap: %v", swapErr)
			}
			if err == nil {
				t.Fatal("the upgrade succeeded through a swapped directory")
			}
			if !errors.Is(err, errdefs.ErrUnsafePath) && !errors.Is(err, errdefs.ErrVerification) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("got %v; want an unsafe path or verification error naming %s", err, dir)
			}
			t.Logf("refused: %v", err)
			w.checkUntouched()
			w.goodAttempt()
		})
	}
}

// swapForSymlink replaces directory p by a symlink to target in one atomic
// step (RENAME_EXCHANGE), as an attacker racing the apply would: a rename
// followed by a symlink leaves a moment in which p does not exist, and an
// apply that meets that moment fails with ENOENT, which says nothing about
// whether it would have followed the symlink.
func swapForSymlink(p, target string) error {
	tmp := p + ".swapped"
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, p, unix.RENAME_EXCHANGE)
}
