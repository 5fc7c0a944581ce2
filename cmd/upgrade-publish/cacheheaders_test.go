package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Packs are as immutable as objects and deltas (named by their digest):
// a school's cache must keep them, not revalidate each one.
func TestCacheHeaders(t *testing.T) {
	h := CacheHeaders(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, tc := range []struct{ path, want string }{
		{"/objects/ab/abcd.zst", "public, max-age=31536000, immutable"},
		{"/deltas/ab/x-abcd.zst", "public, max-age=31536000, immutable"},
		{"/packs/ab/abcd.xz", "public, max-age=31536000, immutable"},
		{"/targets/versions/2/abcd.manifest.zst", "public, max-age=31536000, immutable"},
		{"/3.root.json", "public, max-age=31536000, immutable"},
		{"/12.snapshot.json", "public, max-age=31536000, immutable"},
		{"/12.targets.json", "public, max-age=31536000, immutable"},
		{"/timestamp.json", "no-cache"},
		{"/root.json", "no-cache"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if got := rec.Header().Get("Cache-Control"); got != tc.want {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.want)
		}
	}
}
