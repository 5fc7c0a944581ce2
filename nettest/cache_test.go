package nettest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"laptop.org/upgrade/internal/netns"
)

// nginxConf is a school server: stock nginx caching the repository it
// proxies. Objects and deltas carry "immutable" from upgrade-publish serve
// and are kept; the index says no-cache and always goes upstream. The same
// server also works as a forward proxy (clients with http_proxy set).
const nginxConf = `daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
worker_processes 1;
events { worker_connections 64; }
http {
	log_format cache '$request_uri $status $upstream_cache_status';
	access_log %[1]s/access.log cache;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	proxy_cache_path %[1]s/cache levels=1:2 keys_zone=repo:10m max_size=2g inactive=60d use_temp_path=off;
	server {
		listen [::]:8080;
		location / {
			proxy_pass http://%[2]s;
			proxy_cache repo;
			proxy_cache_revalidate on;
			proxy_cache_lock on;
			proxy_cache_use_stale error timeout updating;
			add_header X-Cache-Status $upstream_cache_status;
		}
	}
}
`

// startNginx runs nginx in ns in front of upstream and returns its
// directory (access.log lives there).
func startNginx(t *testing.T, ns, upstream string) string {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatalf("nginx not found (scripts/deps.d/systemd.txt): %v", err)
	}
	dir, err := os.MkdirTemp("", "nginx-cache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	// Workers run as nobody: they write the cache and temp files.
	nobody, _ := user.Lookup("nobody")
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	for _, d := range []string{"cache", "tmp"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
		os.Chown(filepath.Join(dir, d), uid, gid)
	}
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, upstream)), 0o644)
	start(t, ns, nil, nginx, "-p", dir, "-c", conf)
	waitFor(t, "nginx to listen", func() bool { return canConnect(ns, "::1", 8080) })
	return dir
}

type logLine struct{ uri, status, cache string }

func accessLog(t *testing.T, dir string) []logLine {
	b, err := os.ReadFile(filepath.Join(dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 {
			out = append(out, logLine{f[0], f[1], f[2]})
		}
	}
	return out
}

// TestSchoolCache: two laptops upgrade through the school's nginx cache;
// the second gets every object and delta from the cache (HIT) and the
// index from the repository every time (never HIT).
func TestSchoolCache(t *testing.T) {
	f := newFixture(t)
	p := netns.NewPair(t)
	serve(t, p.S, f.rp.Dir, "[::1]:8081")
	dir := startNginx(t, p.S, "[::1]:8081")
	mirror := "http://[" + p.AddrS + "]:8080/"
	var seen int
	for i, name := range []string{"first laptop", "second laptop"} {
		root := f.root(t, "stall_timeout = 10s\n")
		out, err := upgrade(t, p.C, root, mirror)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		installed(t, root)
		lines := accessLog(t, dir)[seen:]
		seen += len(lines)
		blobs := 0
		for _, l := range lines {
			t.Logf("%s: %s %s %s", name, l.uri, l.status, l.cache)
			switch {
			case strings.HasSuffix(l.uri, "/timestamp.json"):
				if l.cache == "HIT" {
					t.Errorf("%s: the timestamp was served from the cache", name)
				}
			case strings.HasPrefix(l.uri, "/objects/"), strings.HasPrefix(l.uri, "/deltas/"):
				blobs++
				if i == 1 && l.cache != "HIT" {
					t.Errorf("%s: %s was %s, want HIT", name, l.uri, l.cache)
				}
			}
		}
		if blobs == 0 {
			t.Fatalf("%s: no object went through the cache", name)
		}
	}
}

// TestProxy: a mirror name the laptop cannot resolve, reached through the
// school's proxy, from http_proxy in the environment and from `proxy =` in
// upgraded.conf.
func TestProxy(t *testing.T) {
	f := newFixture(t)
	p := netns.NewPair(t)
	netns.Run(t, "ip", "-n", p.C, "-6", "route", "add", "default", "via", p.AddrS)
	serve(t, p.S, f.rp.Dir, "[::1]:8081")
	dir := startNginx(t, p.S, "[::1]:8081")
	proxy := "http://[" + p.AddrS + "]:8080"
	mirror := "http://repo.school.invalid/"
	for _, tc := range []struct {
		name, conf string
		env        []string
	}{
		{"environment", "", []string{"http_proxy=" + proxy}},
		{"config", "proxy = " + proxy + "\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := f.root(t, "stall_timeout = 10s\n"+tc.conf)
			out, err := upgrade(t, p.C, root, mirror, tc.env...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			installed(t, root)
		})
	}
	if n := len(accessLog(t, dir)); n == 0 {
		t.Fatal("nothing went through the proxy")
	}
	// no_proxy naming the mirror: the proxy is bypassed, and the name does
	// not resolve, so the upgrade fails with a network error.
	root := f.root(t, "stall_timeout = 5s\nproxy = "+proxy+"\n")
	out, err := upgrade(t, p.C, root, mirror, "no_proxy=.school.invalid")
	if err == nil {
		t.Fatalf("no_proxy was ignored:\n%s", out)
	}
}
