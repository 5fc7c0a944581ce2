package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// serve serves a repository with headers that let any HTTP cache scale
// distribution: objects and deltas are immutable (named by their digest),
// the signed index must always be revalidated.
func serve(ctx context.Context, dir, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("serving %s on http://%s/\n", dir, ln.Addr())
	srv := &http.Server{Handler: CacheHeaders(http.FileServer(http.Dir(dir))), ReadHeaderTimeout: 10 * time.Second}
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

// CacheHeaders marks content-addressed files immutable and the index
// no-cache.
func CacheHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/objects/"), strings.HasPrefix(r.URL.Path, "/deltas/"), strings.HasPrefix(r.URL.Path, "/packs/"):
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		default:
			w.Header().Set("Cache-Control", "no-cache")
		}
		h.ServeHTTP(w, r)
	})
}
