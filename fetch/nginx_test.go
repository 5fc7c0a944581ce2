package fetch

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestResumeBehindNginx runs the cut-and-resume scenario against a real web
// server: our test server is ours, nginx is what a school server runs. A
// small TCP proxy in front of nginx cuts the first response after cutAt
// bytes; the client must resume with a Range that nginx answers with 206,
// and nginx's own access log must show it.
func TestResumeBehindNginx(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed (scripts/deps.d/fetch.txt lists nginx-light)")
	}
	const size, cutAt = 8 * mib, 3 * mib
	// Workers run as nobody: the served tree must be world-readable, which
	// t.TempDir (0700) is not.
	root, err := os.MkdirTemp("", "fetch-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	served := filepath.Join(root, "repo")
	b := addBlob(t, content(80, size), served)
	for d := filepath.Dir(filepath.Join(served, b.Path)); d != root; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	port := freePort(t)
	conf := filepath.Join(root, "nginx.conf")
	writeNginxConf(t, conf, root, served, port)
	cmd := exec.Command(bin, "-p", root, "-c", conf, "-e", filepath.Join(root, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT) // graceful stop
		cmd.Wait()
	})
	upstream := net.JoinHostPort("::1", strconv.Itoa(port))
	waitListening(t, upstream)

	proxy := cutProxy(t, upstream, cutAt)
	f := newFetcher(t, Options{Mirrors: []string{"http://" + proxy + "/"}})
	dir := t.TempDir()
	if err := f.Fetch(testCtx(t), dir, []Blob{b}); err != nil {
		data, _ := os.ReadFile(filepath.Join(root, "error.log"))
		t.Fatalf("%v\nnginx error.log:\n%s", err, data)
	}
	checkFinal(t, dir, b)

	// access.log: "$uri $status [$http_range] $body_bytes_sent", flushed at
	// request end; nginx logs the cut request with what it managed to send.
	var ranges []string
	var sent int64
	for _, l := range readLines(t, filepath.Join(root, "access.log")) {
		t.Logf("nginx: %s", l)
		fs := strings.Fields(l)
		if len(fs) != 4 || fs[0] != "/"+b.Path {
			continue
		}
		n, _ := strconv.ParseInt(fs[3], 10, 64)
		sent += n
		if fs[1] == "206" {
			ranges = append(ranges, strings.Trim(fs[2], "[]"))
		}
	}
	if len(ranges) != 1 || !strings.HasPrefix(ranges[0], "bytes=") {
		t.Fatalf("206 responses with Range %q, want exactly one", ranges)
	}
	off, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(ranges[0], "bytes="), "-"), 10, 64)
	if err != nil || off <= 0 || off > cutAt {
		t.Errorf("resumed at %q, want an offset in (0, %d]", ranges[0], cutAt)
	}
	if got, want := f.BytesReceived(), int64(size); got != want {
		t.Errorf("client received %d bytes, want %d (no byte twice)", got, want)
	}
	if sent >= 2*size {
		t.Errorf("nginx sent %d bytes for a %d-byte blob", sent, size)
	}
}

func writeNginxConf(t *testing.T, conf, root, served string, port int) {
	tmp := filepath.Join(root, "tmp")
	os.Mkdir(tmp, 0o755)
	c := `daemon off;
master_process on;
worker_processes 1;
pid ` + root + `/nginx.pid;
error_log ` + root + `/error.log;
events { worker_connections 64; }
http {
	client_body_temp_path ` + tmp + `/body;
	proxy_temp_path ` + tmp + `/proxy;
	fastcgi_temp_path ` + tmp + `/fastcgi;
	uwsgi_temp_path ` + tmp + `/uwsgi;
	scgi_temp_path ` + tmp + `/scgi;
	log_format ranges '$uri $status [$http_range] $body_bytes_sent';
	access_log ` + root + `/access.log ranges;
	default_type application/octet-stream;
	server {
		listen [::1]:` + strconv.Itoa(port) + `;
		root ` + served + `;
	}
}
`
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freePort finds a free port on [::1] for nginx (which must bind it itself).
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening polls until addr accepts connections, bounded by the test.
func waitListening(t *testing.T, addr string) {
	ctx := testCtx(t)
	for {
		c, err := net.DialTimeout("tcp6", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("nginx never listened on %s: %v", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cutProxy forwards [::1]:random to upstream; the first connection's
// response stream is cut after n bytes (headers included), later ones pass.
func cutProxy(t *testing.T, upstream string, n int64) string {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var first atomic.Bool
	first.Store(true)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp6", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(u, c); u.Close() }()
			go func(cut bool) {
				if cut {
					io.CopyN(c, u, n)
				} else {
					io.Copy(c, u)
				}
				c.Close()
				u.Close()
			}(first.Swap(false))
		}
	}()
	return ln.Addr().String()
}

func readLines(t *testing.T, name string) []string {
	fh, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
