package fetch

import (
	"context"
	"sync"
	"time"
)

// limiter paces reads across a Fetcher to a byte rate (Options.MaxRate) so a
// background download leaves the link to the user. Readers account for bytes
// after they arrive and sleep off the debt; a burst is one read buffer.
type limiter struct {
	rate  float64 // bytes per second
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu   sync.Mutex
	next time.Time // when the bytes accounted so far have been "paid for"
}

func newLimiter(rate int64) *limiter {
	return &limiter{rate: float64(rate), now: time.Now, sleep: sleepCtx}
}

// chunk is the largest read a limited reader makes, so that one read never
// owes more than a fraction of a second at modest rates.
func (l *limiter) chunk() int {
	c := int(l.rate / 8)
	if c < 512 {
		c = 512
	}
	if c > 32<<10 {
		c = 32 << 10
	}
	return c
}

// wait accounts n bytes and sleeps until the rate allows them.
func (l *limiter) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	now := l.now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	d := l.next.Sub(now)
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return l.sleep(ctx, d)
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
