package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRepoHandler: the publisher's server serves the repository's files
// and nothing else: no listing of any directory, no symlink out of the
// repository (a key made beside it, /etc), no fifo.
func TestRepoHandler(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "repo")
	for p, b := range map[string]string{"index.json": "{}", "objects/ab/cd": "object", "../secret.key": "SECRET"} {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"key": "../secret.key", "passwd": "/etc/passwd", "objects/ab/same": "cd"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	srv := httptest.NewServer(RepoHandler(root))
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/index.json", 200, "{}"},
		{"/objects/ab/cd", 200, "object"},
		{"/objects/ab/same", 200, "object"}, // a link inside the repository
		{"/", 404, ""},
		{"/objects/", 404, ""},
		{"/objects/ab", 404, ""},
		{"/key", 404, ""},
		{"/passwd", 404, ""},
		{"/../secret.key", 404, ""},
		{"/fifo", 404, ""},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.code == 200 && string(b) != tc.body) {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}
