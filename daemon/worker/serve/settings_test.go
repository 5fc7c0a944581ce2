package serve

import (
	"net/http"
	"testing"
)

// TestProxyFunc: `proxy =` applies to every mirror except no_proxy hosts,
// loopback and link-local addresses.
func TestProxyFunc(t *testing.T) {
	t.Setenv("no_proxy", "school.example, .lan, 10.0.0.0/8, [fd42:feed::9]")
	pf, err := ProxyFunc("http://[fd42:feed::1]:3128")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url   string
		proxy bool
	}{
		{"http://mirror.laptop.org/", true},
		{"http://school.example/repo/", false},
		{"http://a.school.example/", false},
		{"http://xschool.example/", true},
		{"http://server.lan:8080/", false},
		{"http://10.1.2.3/", false},
		{"http://[fd42:feed::9]:80/", false},
		{"http://[fd42:feed::8]:80/", true},
		{"http://[::1]:8080/", false},
		{"http://[fe80::1%25eth0]:8080/", false},
	} {
		req, _ := http.NewRequest("GET", tc.url, nil)
		u, err := pf(req)
		if err != nil || (u != nil) != tc.proxy {
			t.Errorf("%s: proxy %v, %v; want proxied %v", tc.url, u, err, tc.proxy)
		}
	}
	for _, bad := range []string{"fd42::1:3128", "ftp://x", "http://"} {
		if _, err := ProxyFunc(bad); err == nil {
			t.Errorf("ProxyFunc(%q) accepted", bad)
		}
	}
}
