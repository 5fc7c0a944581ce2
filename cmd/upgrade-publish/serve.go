package main

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// serve serves a repository with headers that let any HTTP cache scale
// distribution: objects and deltas are immutable (named by their digest),
// the timestamp must always be revalidated.
func serve(ctx context.Context, dir, addr string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("serving %s on http://%s/\n", dir, ln.Addr())
	srv := &http.Server{Handler: RepoHandler(root), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	log.Print("stopped")
	return nil
}

// RepoHandler serves the regular files of a repository and nothing else:
// no directory listing, no fifo or device, and no symlink that leads out
// of the repository (os.Root), so a key or anything else beside or linked
// from the repository is never served.
func RepoHandler(root *os.Root) http.Handler {
	return CacheHeaders(http.FileServerFS(filesOnly{root}))
}

// filesOnly answers "not found" for anything but a regular file. Files are
// opened non-blocking: opening a fifo for reading would wait for a writer.
type filesOnly struct{ root *os.Root }

func (f filesOnly) Open(name string) (fs.File, error) {
	notFound := &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	if !fs.ValidPath(name) {
		return nil, notFound
	}
	file, err := f.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, notFound // escaping the root included
	}
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		file.Close()
		return nil, notFound
	}
	return file, nil
}

// versionedMeta matches metadata named by its version (consistent snapshots).
var versionedMeta = regexp.MustCompile(`^/[1-9][0-9]*\.(root|snapshot|targets)\.json$`)

// CacheHeaders marks content-addressed files and versioned metadata
// (N.root.json, N.snapshot.json, N.targets.json, target files) immutable,
// and the rest (timestamp.json, root.json) no-cache.
func CacheHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, "/objects/"), strings.HasPrefix(p, "/deltas/"), strings.HasPrefix(p, "/packs/"),
			strings.HasPrefix(p, "/targets/"), versionedMeta.MatchString(p):
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		default:
			w.Header().Set("Cache-Control", "no-cache")
		}
		h.ServeHTTP(w, r)
	})
}
