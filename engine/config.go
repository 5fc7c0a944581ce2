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

// Phase is where a job is.
type Phase string

const (
	PhaseChecking    Phase = "checking"
	PhaseCloning     Phase = "cloning"
	PhaseDownloading Phase = "downloading"
	PhaseApplying    Phase = "applying"
	PhaseVerifying   Phase = "verifying"
	PhaseDone        Phase = "done"
)

// Progress is reported as a job moves; callers throttle it.
type Progress struct {
	Phase      Phase
	BytesDone  int64
	BytesTotal int64
	ItemsDone  int
	ItemsTotal int
}

// Percent of the whole job, weighting download by bytes.
func (p Progress) Percent() float64 {
	base := map[Phase]float64{PhaseChecking: 0, PhaseCloning: 2, PhaseDownloading: 10, PhaseApplying: 80, PhaseVerifying: 90, PhaseDone: 100}[p.Phase]
	span := map[Phase]float64{PhaseCloning: 8, PhaseDownloading: 70, PhaseApplying: 10, PhaseVerifying: 10}[p.Phase]
	frac := 0.0
	switch {
	case p.BytesTotal > 0:
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	case p.ItemsTotal > 0:
		frac = float64(p.ItemsDone) / float64(p.ItemsTotal)
	}
	if frac > 1 {
		frac = 1
	}
	return base + span*frac
}

var errCorruptRepo = errdefs.ErrCorrupt

// policy is the manifest policy in force.
func (c *Config) policy() manifest.Policy {
	if c.Policy == nil {
		return manifest.DefaultPolicy
	}
	return *c.Policy
}
