package fetch

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// limiter paces reads across a Fetcher to a byte rate (Options.MaxRate) so a
// background download leaves the link to the user: a token bucket
// (golang.org/x/time/rate) whose burst is one read, shared by every reader.
// Readers account for bytes after they arrive and wait off the debt.
type limiter struct {
	lim *rate.Limiter
}

func newLimiter(bps int64) *limiter {
	l := &limiter{}
	l.lim = rate.NewLimiter(rate.Limit(bps), l.chunkFor(float64(bps)))
	return l
}

// chunk is the largest read a limited reader makes (the bucket's burst), so
// that one read never owes more than a fraction of a second at modest
// rates.
func (l *limiter) chunk() int { return l.lim.Burst() }

func (l *limiter) chunkFor(bps float64) int {
	return min(max(int(bps/8), 512), 32<<10)
}

// wait accounts n bytes (at most chunk) and sleeps until the rate allows
// them, or ctx ends.
func (l *limiter) wait(ctx context.Context, n int) error {
	r := l.lim.ReserveN(time.Now(), n)
	if !r.OK() {
		return fmt.Errorf("rate limit: a read of %d bytes exceeds the burst of %d", n, l.lim.Burst())
	}
	if err := sleepCtx(ctx, r.Delay()); err != nil {
		r.Cancel()
		return err
	}
	return nil
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
