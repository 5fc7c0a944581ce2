package main

import (
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// counter serves a directory over HTTP on 127.0.0.1 and counts the body
// bytes it sends, so that every HTTP peer (ours, ostree, casync) is charged
// the same way: payload on the wire, headers excluded.
type counter struct {
	URL   string
	bytes atomic.Int64
	reqs  atomic.Int64
	srv   *http.Server

	mu     sync.Mutex
	byPath map[string]int64 // body bytes per URL path since the last Reset
}

func serveCounting(dir string) *counter {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	check(err)
	c := &counter{URL: "http://" + ln.Addr().String() + "/", byPath: map[string]int64{}}
	fs := http.FileServer(http.Dir(dir))
	c.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.reqs.Add(1)
		if os.Getenv("PAIRBENCH_DEBUG") != "" {
			log.Printf("GET %s %s", r.URL.Path, r.Header.Get("Range"))
		}
		var n atomic.Int64
		fs.ServeHTTP(countingWriter{w, &n}, r)
		c.bytes.Add(n.Load())
		c.mu.Lock()
		c.byPath[r.URL.Path] += n.Load()
		c.mu.Unlock()
	})}
	go c.srv.Serve(ln)
	return c
}

// Reset zeroes the counters and returns what they held.
func (c *counter) Reset() (bytes, reqs int64) {
	c.mu.Lock()
	clear(c.byPath)
	c.mu.Unlock()
	return c.bytes.Swap(0), c.reqs.Swap(0)
}

// Paths returns the body bytes per URL path since the last Reset.
func (c *counter) Paths() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int64, len(c.byPath))
	for p, n := range c.byPath {
		m[p] = n
	}
	return m
}

func (c *counter) Close() { c.srv.Close() }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}
