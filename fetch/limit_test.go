package fetch

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLimiterSchedule checks the pacing arithmetic on a fake clock (no timed
// asserts): bytes owe time at the configured rate, idle time is not saved up
// as a burst, and the debt is shared by all readers of one Fetcher.
func TestLimiterSchedule(t *testing.T) {
	now := time.Unix(1000, 0)
	var slept []time.Duration
	l := newLimiter(1000) // 1000 B/s: 1 ms per byte
	l.now = func() time.Time { return now }
	l.sleep = func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}
	ctx := context.Background()
	l.wait(ctx, 500)           // owes 500ms
	l.wait(ctx, 500)           // second reader before time moved: owes 1s total
	now = now.Add(time.Second) // the sleeps happened
	l.wait(ctx, 100)           // 100ms
	now = now.Add(time.Hour)   // idle
	l.wait(ctx, 250)           // idle time is no credit: 250ms
	want := []time.Duration{500 * time.Millisecond, time.Second, 100 * time.Millisecond, 250 * time.Millisecond}
	if diff := cmp.Diff(want, slept); diff != "" {
		t.Errorf("sleeps (-want +got):\n%s", diff)
	}
	if got := newLimiter(1).chunk(); got != 512 {
		t.Errorf("chunk at 1 B/s = %d, want the 512-byte floor", got)
	}
	if got := newLimiter(1 << 30).chunk(); got != 32<<10 {
		t.Errorf("chunk at 1 GiB/s = %d, want the 32 KiB cap", got)
	}
}

// TestFetchMaxRate runs a rate-limited download end to end: the pauses the
// limiter inserts must not be mistaken for a stalled connection, and the
// accounting stays exact.
func TestFetchMaxRate(t *testing.T) {
	s := newServer(t)
	b := addBlob(t, content(11, 64<<10), s.dir)
	// At 64 KiB/s every 8 KiB read is followed by a 125 ms pause, longer
	// than the stall timeout: were the stall timer running while pacing,
	// each attempt would get one read and the retries would run out.
	f := newFetcher(t, Options{Mirrors: []string{s.URL}, MaxRate: 64 << 10, StallTimeout: 100 * time.Millisecond})
	dir := t.TempDir()
	if err := f.Fetch(testCtx(t), dir, []Blob{b}); err != nil {
		t.Fatal(err)
	}
	checkFinal(t, dir, b)
	if got := f.BytesReceived(); got != b.Size {
		t.Errorf("BytesReceived = %d, want %d", got, b.Size)
	}
}
