package sugartest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGate(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB
	tests := []struct {
		name       string
		hold       int64
		from       int // Range: bytes=from- (0: no Range)
		down       bool
		wantStatus int
		wantBefore int // bytes readable before Release
	}{
		{name: "open", wantStatus: 200, wantBefore: len(body)},
		{name: "held mid-body", hold: 4096, wantStatus: 200, wantBefore: 4096},
		{name: "held beyond the body", hold: int64(len(body)) + 1, wantStatus: 200, wantBefore: len(body)},
		{name: "resumed before the hold point", hold: 4096, from: 1000, wantStatus: 206, wantBefore: 3096},
		{name: "resumed past the hold point", hold: 4096, from: 5000, wantStatus: 206, wantBefore: 0},
		{name: "down", down: true, wantStatus: http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(body))
			}))
			srv := httptest.NewServer(g)
			defer srv.Close()
			defer g.Release() // a failed test must not leave the handler blocked
			if tc.hold > 0 {
				g.Hold(tc.hold)
			}
			g.SetDown(tc.down)
			req, _ := http.NewRequest("GET", srv.URL, nil)
			if tc.from > 0 {
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-", tc.from))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if diff := cmp.Diff(tc.wantStatus, resp.StatusCode); diff != "" {
				t.Fatalf("status (-want +got):\n%s", diff)
			}
			if tc.down {
				return
			}
			first := make([]byte, tc.wantBefore)
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("reading the first %d bytes: %v", tc.wantBefore, err)
			}
			g.Release()
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := append(first, rest...), body[tc.from:]; !bytes.Equal(got, want) {
				t.Errorf("body: got %d bytes, want the %d sent", len(got), len(want))
			}
		})
	}
}

// A client that gives up while held must free the handler: srv.Close waits
// for it, so a leak hangs this test.
func TestRangeStart(t *testing.T) {
	tests := []struct {
		header string
		want   int64
	}{
		{"", 0},
		{"bytes=100-", 100},
		{"bytes=100-199", 100},
		{"bytes=-500", 0},
		{"bytes=0-1,5-9", 0},
		{"items=3-", 0},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, rangeStart(tc.header)); diff != "" {
			t.Errorf("rangeStart(%q) (-want +got):\n%s", tc.header, diff)
		}
	}
}

func TestGateClientGone(t *testing.T) {
	g := NewGate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	}))
	srv := httptest.NewServer(g)
	defer srv.Close()
	g.Hold(100)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	srv.CloseClientConnections()
}
