package netmon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"laptop.org/upgrade/errdefs"
)

// maxLinkLosses bounds how many times one job is restarted by a flapping
// link; each outage is itself bounded by the wait.
const maxLinkLosses = 100

// Persist runs attempt until it ends without a network failure.
//
// Before each attempt it waits, at most wait, for a route to a mirror. While
// an attempt runs, losing the route to every mirror cancels it at once with
// cause ErrLinkLost, so that a dead link costs neither stall timeouts nor the
// fetcher's retries; when the route returns the next attempt resumes where
// the last one stopped (the engine's journal and partial downloads make a
// re-run cheap). An attempt that fails with ErrNetwork while the route is
// still there (a mirror down, not the link) is final: fetch has already
// retried and failed over.
func (m *Monitor) Persist(ctx context.Context, mirrors []string, wait time.Duration, attempt func(ctx context.Context) error) error {
	for losses := 0; ; losses++ {
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, err := m.WaitRoute(wctx, mirrors)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("waited %v for the network: %w", wait, err)
		}
		if losses > 0 {
			m.o.Logf("netmon: route to the mirrors is back; resuming (attempt %d)", losses+1)
		}
		actx, acancel := context.WithCancelCause(ctx)
		unregister := m.RegisterChangeCallback(func(ChangeDelta) {
			if m.Reachable(actx, mirrors) == "" {
				acancel(ErrLinkLost)
			}
		})
		err = attempt(actx)
		unregister()
		lost := errors.Is(context.Cause(actx), ErrLinkLost)
		acancel(nil)
		switch {
		case err == nil || ctx.Err() != nil:
			return err
		case lost:
			m.o.Logf("netmon: lost the route to every mirror; the download pauses until it returns (%s)", m.State())
		case errors.Is(err, errdefs.ErrNetwork) && m.Reachable(ctx, mirrors) == "":
			m.o.Logf("netmon: network failure with no route to any mirror; waiting for the route: %v", err)
		default:
			return err
		}
		if losses+1 >= maxLinkLosses {
			return fmt.Errorf("the route to the mirrors was lost %d times: %w", maxLinkLosses, errdefs.ErrNetwork)
		}
	}
}
