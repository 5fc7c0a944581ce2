package engine

import (
	"context"
	"errors"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// Check answers "is there something newer, and what would it cost?" without
// writing into any slot: the preflight of an upgrade, stopped after planning.
func Check(ctx context.Context, cfg *Config, version layout.Version) (*Result, bool, error) {
	res, err := Upgrade(ctx, cfg, Options{Version: version, DryRun: true})
	if errors.Is(err, errdefs.ErrUpToDate) {
		return res, true, nil
	}
	return res, false, err
}
