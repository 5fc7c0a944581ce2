package fetch

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLimiterSchedule checks the pacing arithmetic on explicit times (no
// timed asserts): bytes owe time at the configured rate, the debt is shared
// by all readers of one Fetcher, and idle time saves up one read at most.
func TestLimiterSchedule(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(1000) // 1000 B/s: 1 ms per byte; burst 512 bytes
	var delays []time.Duration
	reserve := func(n int) { delays = append(delays, l.lim.ReserveN(now, n).DelayFrom(now)) }
	reserve(500)               // the burst pays for it
	reserve(500)               // second reader before time moved: owes 488 ms
	now = now.Add(time.Second) // the sleeps happened
	reserve(100)               // 12 bytes of credit back, paid at once
	now = now.Add(time.Hour)   // idle: at most one burst saved up
	reserve(512)
	reserve(250) // 250 ms
	want := []time.Duration{0, 488 * time.Millisecond, 0, 0, 250 * time.Millisecond}
	if diff := cmp.Diff(want, delays); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	if got := newLimiter(1).chunk(); got != 512 {
		t.Errorf("chunk at 1 B/s = %d, want the 512-byte floor", got)
	}
	if got := newLimiter(1 << 30).chunk(); got != 32<<10 {
		t.Errorf("chunk at 1 GiB/s = %d, want the 32 KiB cap", got)
	}
	if err := newLimiter(1000).wait(context.Background(), 513); err == nil {
		t.Error("a read larger than the burst was accepted")
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
