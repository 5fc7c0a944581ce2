package engine

import (
	"context"
	"errors"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// Check answers "is there something newer, and what would it cost?" and
// writes nothing: no slot, no staging, no journal (only the index's
// last-seen record, when the index is newer than the one seen, as every
// reader of the index must keep it for anti-rollback). It reads the same
// documents an upgrade would, into memory, and stops after planning.
func Check(ctx context.Context, cfg *Config, version layout.Version) (*Result, bool, error) {
	if err := cfg.check(); err != nil {
		return nil, false, err
	}
	res, err := newRun(cfg, Options{Version: version}, true).do(ctx, checkSteps)
	if errors.Is(err, errdefs.ErrUpToDate) {
		return res, true, nil
	}
	return res, false, err
}

// checkSteps are Check's: Upgrade's up to plan, with recorded for ready
// (a check trusts the slot's record instead of hashing the slot) and
// before target (a ready slot needs no documents).
var checkSteps = []step{
	{"check", (*run).check},
	{"ready", (*run).recorded},
	{"target", (*run).target},
	{"plan", (*run).plan},
}
