// Package engine runs one upgrade of the inactive slot: read the signed
// index, pick the target, clone the active slot, plan what is missing,
// fetch it, apply it and verify the result. The daemon (package daemon) and
// the foreground tools drive exactly this code.
//
// The engine never touches the active slot and never writes the boot
// pointer; it ends with the inactive slot complete, verified and recorded,
// ready for the security service to check again and swing the pointer.
package engine

import (
	"fmt"
	"time"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/report"
)

// Config is everything an upgrade needs to know about this machine.
type Config struct {
	Root     layout.Root
	Mirrors  []string
	Channel  string
	Hardware string
	// TrustedRoot is the TUF root shipped with the OS (etc/upgrade/root.json),
	// where trust starts before the machine keeps its own (RootsDir).
	TrustedRoot []byte
	// Keys are the keys of the format before TUF: with no root anywhere,
	// the repository's first root is adopted when one of them signed it.
	Keys   repo.Keyring
	Policy *manifest.Policy // nil: manifest.DefaultPolicy; otherwise used exactly as given
	Fetch  fetch.Options    // Mirrors and Progress are filled in by the engine
	Now    func() time.Time
	Logf   func(string, ...any)
	// BeforeWrite is called before the engine starts writing into slot; the
	// daemon uses it to have the security service make sure the boot pointer
	// does not name that slot (a half-written slot must never be next).
	BeforeWrite func(slot layout.Slot) error
	// Workers for hashing and cloning (default: all cores).
	Workers int
	// DeltaCodecs are the delta codecs this machine applies (nil: all it
	// knows, repo.DeltaCodecs). A machine may leave out a codec whose
	// decoding its CPU cannot afford; it then fetches those contents some
	// other way, as a client predating the codec does.
	DeltaCodecs []string
}

func (c *Config) deltaCodecs() []string {
	if c.DeltaCodecs == nil {
		return repo.DeltaCodecs()
	}
	return c.DeltaCodecs
}

func (c *Config) check() error {
	if len(c.Mirrors) == 0 {
		return fmt.Errorf("no mirrors configured: %w", errdefs.ErrInvalidArgument)
	}
	if c.Channel == "" {
		return fmt.Errorf("no channel configured: %w", errdefs.ErrInvalidArgument)
	}
	if !layout.ValidChannel(c.Channel) {
		return fmt.Errorf("channel %s: want 1-64 of A-Z, a-z, 0-9, '.', '-', '_': %w", errdefs.Quote(c.Channel, 64), errdefs.ErrInvalidArgument)
	}
	if len(c.Keys) == 0 && c.TrustedRoot == nil {
		return fmt.Errorf("no trusted keys: %w", errdefs.ErrFailedPrecondition)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// The job's report types live in package report, which the daemon links
// without the engine.
type (
	Phase    = report.Phase
	Progress = report.Progress
)

const (
	PhaseChecking    = report.PhaseChecking
	PhaseCloning     = report.PhaseCloning
	PhaseDownloading = report.PhaseDownloading
	PhaseApplying    = report.PhaseApplying
	PhaseVerifying   = report.PhaseVerifying
	PhaseDone        = report.PhaseDone
)

var errCorruptRepo = errdefs.ErrCorrupt

// policy is the manifest policy in force.
func (c *Config) policy() manifest.Policy {
	if c.Policy == nil {
		return manifest.DefaultPolicy
	}
	return *c.Policy
}
