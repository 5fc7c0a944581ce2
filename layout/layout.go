// Package layout names every path the system uses under a root prefix R
// ("/" in production, a temp dir in tests). It is the single place where the
// disk layout of docs/architecture.md is written down in code; no other package
// joins path strings onto a root by itself.
package layout

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"laptop.org/upgrade/errdefs"
)

// Slot names one of the two OS trees.
type Slot string

const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// Valid reports whether s is "a" or "b".
func (s Slot) Valid() bool { return s == SlotA || s == SlotB }

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// ParseSlot accepts "a" or "b".
func ParseSlot(s string) (Slot, error) {
	if sl := Slot(s); sl.Valid() {
		return sl, nil
	}
	return "", fmt.Errorf("slot %q: want a or b: %w", s, errdefs.ErrInvalidArgument)
}

// Root is a root prefix. All methods return absolute, cleaned paths.
type Root struct{ Dir string }

// New returns the layout under dir (made absolute).
func New(dir string) (Root, error) {
	if dir == "" {
		dir = "/"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Root{}, fmt.Errorf("root %q: %w", dir, err)
	}
	return Root{Dir: abs}, nil
}

func (r Root) join(p ...string) string { return filepath.Join(append([]string{r.Dir}, p...)...) }

// Slot is R/a or R/b.
func (r Root) Slot(s Slot) string { return r.join(string(s)) }

// Current is the R/current symlink the initrd sets at boot.
func (r Root) Current() string { return r.join("current") }

// StateDir is the daemon's state: R/var/lib/upgrade. Same filesystem as the slots.
func (r Root) StateDir() string { return r.join("var", "lib", "upgrade") }

// StagingDir holds in-progress and finished downloads, one file per digest.
func (r Root) StagingDir() string { return filepath.Join(r.StateDir(), "staging") }

// ScratchDir is where a job writes the inactive slot's new files before
// renaming them into the slot, so that the daemon never opens a file of a
// slot for writing (docs/systemd.md, "Confinement"). On the slots' mount.
func (r Root) ScratchDir() string { return filepath.Join(r.StateDir(), "scratch") }

// JournalFile records the running job so that kill -9 resumes it.
func (r Root) JournalFile() string { return filepath.Join(r.StateDir(), "journal.json") }

// SlotMetaDir holds the signed index and manifest a slot was built from:
// R/var/lib/upgrade/slots/<slot>/{index.json,manifest}.
func (r Root) SlotMetaDir(s Slot) string { return filepath.Join(r.StateDir(), "slots", string(s)) }

// SlotIndex is the signed index (envelope bytes) that pins the slot's manifest.
func (r Root) SlotIndex(s Slot) string { return filepath.Join(r.SlotMetaDir(s), "index.json") }

// SlotManifest is the uncompressed manifest of the slot.
func (r Root) SlotManifest(s Slot) string { return filepath.Join(r.SlotMetaDir(s), "manifest") }

// SlotVersionFile records the version number the slot holds ("2\n").
func (r Root) SlotVersionFile(s Slot) string { return filepath.Join(r.SlotMetaDir(s), "version") }

// SeenIndex is where the newest accepted index was kept before serials
// were kept per channel; engine migrates it to SeenIndexFor.
func (r Root) SeenIndex() string { return filepath.Join(r.StateDir(), "seen-index.json") }

// SeenIndexFor is the newest signed index of channel this machine has
// accepted (anti-rollback, anti-freeze). Each channel has its own serials,
// so each keeps its own; channel must satisfy ValidChannel.
func (r Root) SeenIndexFor(channel string) string {
	return filepath.Join(r.StateDir(), "seen-index", channel+".json")
}

// ValidChannel reports whether a channel name is safe as a file name and
// plain to read: 1-64 of [A-Za-z0-9._-], starting with a letter or digit.
func ValidChannel(c string) bool {
	if c == "" || len(c) > 64 || c[0] == '.' || c[0] == '-' || c[0] == '_' {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// RootsDir is the daemon's persistent chain of trusted TUF roots
// (N.root.json), outside the slots: a rotation holds whatever slot boots.
func (r Root) RootsDir() string { return filepath.Join(r.StateDir(), "roots") }

// SecurityRoot is the security service's own trusted TUF root.
func (r Root) SecurityRoot() string { return filepath.Join(r.SecurityDir(), "root.json") }

// SecurityDir is the security service's state, which it alone writes.
func (r Root) SecurityDir() string { return r.join("var", "lib", "securityd") }

// BootPointer is the file the security service writes and the initrd reads.
func (r Root) BootPointer() string { return filepath.Join(r.SecurityDir(), "bootptr") }

// SecurityRecord is the security service's own record of what each slot
// holds and of the newest index it has seen (never the daemon's word).
func (r Root) SecurityRecord() string { return filepath.Join(r.SecurityDir(), "record.json") }

// ConfigDir is R/etc/upgrade.
func (r Root) ConfigDir() string { return r.join("etc", "upgrade") }

// DaemonConfig is R/etc/upgrade/upgraded.conf.
func (r Root) DaemonConfig() string { return filepath.Join(r.ConfigDir(), "upgraded.conf") }

// TrustedRootFile is the TUF root shipped in the slot (R/etc/upgrade/root.json):
// where trust starts on a machine that has none of its own yet.
func (r Root) TrustedRootFile() string { return filepath.Join(r.ConfigDir(), "root.json") }

// KeysDir holds the trusted Ed25519 public keys (*.pub) of the format before TUF.
func (r Root) KeysDir() string { return filepath.Join(r.ConfigDir(), "keys") }

// PersistentDirs live outside the slots and are shared by both.
var PersistentDirs = []string{"home", "var", "root", "tmp", "srv", "mnt", "media"}

// CurrentSlot reads R/current. It fails clearly when current is missing, not
// a symlink, or points at something other than a or b.
func (r Root) CurrentSlot() (Slot, error) {
	t, err := os.Readlink(r.Current())
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.Current(), errdefs.ErrFailedPrecondition)
	}
	t = strings.TrimSuffix(strings.TrimPrefix(t, "./"), "/")
	if s := Slot(t); s.Valid() {
		return s, nil
	}
	if s := Slot(filepath.Base(t)); s.Valid() && filepath.Dir(t) == r.Dir {
		return s, nil
	}
	return "", fmt.Errorf("%s points at %q, not a or b: %w", r.Current(), t, errdefs.ErrFailedPrecondition)
}
