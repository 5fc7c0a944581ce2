package nettest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/internal/netns"
	"laptop.org/upgrade/layout"
)

// TestMirrors: an IPv6-only mirror by ULA address, and a school server on
// the local link by link-local address with a zone, end to end with
// `upgraded --once` in the client namespace (which has no IPv4 at all).
func TestMirrors(t *testing.T) {
	f := newFixture(t)
	p := netns.NewPair(t)
	serve(t, p.S, f.rp.Dir, "[::]:8080")
	for _, tc := range []struct{ name, mirror string }{
		{"ipv6-only", "http://[" + p.AddrS + "]:8080/"},
		{"link-local with zone", "http://[" + p.LLS + "%25" + p.IfC + "]:8080/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := f.root(t, "stall_timeout = 10s\n")
			out, err := upgrade(t, p.C, root, tc.mirror)
			if err != nil {
				t.Fatalf("upgraded --once: %v\n%s", err, out)
			}
			installed(t, root)
		})
	}
}

// TestLinkLost: the client's link goes down mid-download and comes back;
// the same process resumes the partial download and finishes, without
// starting the download over. The server is rate-capped with tc tbf so the
// download lasts seconds.
func TestLinkLost(t *testing.T) {
	f := newFixture(t)
	p := netns.NewPair(t)
	netns.Run(t, "tc", "-n", p.S, "qdisc", "add", "dev", p.IfS, "root", "tbf", "rate", "4mbit", "burst", "32kbit", "latency", "400ms")
	serve(t, p.S, f.rp.Dir, "[::]:8080")
	root := f.root(t, "stall_timeout = 20s\n")
	lr, _ := layout.New(root)
	c := start(t, p.C, nil, bin(t, "upgraded"), "--once", "--root", root, "--network-wait", "60s", "--mirror", "http://["+p.AddrS+"]:8080/")
	// Down once a good part of the big object is on disk.
	waitFor(t, "a partial download", func() bool {
		ents, _ := os.ReadDir(lr.StagingDir())
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".partial") && fi.Size() > 256<<10 {
				return true
			}
		}
		return false
	})
	p.SetLink(t, false)
	waitFor(t, "the client to notice", func() bool { return strings.Contains(c.out.String(), "lost the route") })
	p.SetLink(t, true)
	if err := c.wait(t); err != nil {
		t.Fatalf("upgraded --once: %v\n%s", err, c.out)
	}
	out := c.out.String()
	t.Logf("client:\n%s", out)
	if !strings.Contains(out, "resuming") {
		t.Errorf("no resume in:\n%s", out)
	}
	if n := fetched(t, out); n > bigSize*3/2 {
		t.Errorf("fetched %d bytes for a %d-byte object: the download started over", n, bigSize)
	}
	installed(t, root)
}

// TestPacketLoss: 10 % of the server's packets are dropped by nftables;
// TCP and fetch's retries carry the upgrade through.
func TestPacketLoss(t *testing.T) {
	f := newFixture(t)
	p := netns.NewPair(t)
	rules := filepath.Join(t.TempDir(), "loss.nft")
	os.WriteFile(rules, []byte(`table inet loss {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport 8080 numgen random mod 100 < 10 counter drop
	}
}
`), 0o644)
	netns.Run(t, "ip", "netns", "exec", p.S, "nft", "-f", rules)
	serve(t, p.S, f.rp.Dir, "[::]:8080")
	root := f.root(t, "stall_timeout = 10s\n")
	out, err := upgrade(t, p.C, root, "http://["+p.AddrS+"]:8080/")
	if err != nil {
		t.Fatalf("upgraded --once: %v\n%s", err, out)
	}
	installed(t, root)
	t.Logf("nft counters:\n%s", netns.Run(t, "ip", "netns", "exec", p.S, "nft", "list", "ruleset"))
}

// TestStall: a proxy of ours in front of the server stops sending in the
// middle of responses. Stalling the first connections costs retries and
// the upgrade finishes; stalling every connection fails with a clear error
// within a bounded time, and never installs a slot.
func TestStall(t *testing.T) {
	f := newFixture(t)
	p := netns.NewPair(t)
	serve(t, p.S, f.rp.Dir, "[::1]:8081")
	startProxy(t, p.S, "[::]:8080", "[::1]:8081", 2)
	startProxy(t, p.S, "[::]:8090", "[::1]:8081", -1)
	t.Run("first connections stall", func(t *testing.T) {
		root := f.root(t, "stall_timeout = 2s\nparallel = 1\n")
		out, err := upgrade(t, p.C, root, "http://["+p.AddrS+"]:8080/")
		if err != nil {
			t.Fatalf("upgraded --once: %v\n%s", err, out)
		}
		installed(t, root)
	})
	t.Run("every connection stalls", func(t *testing.T) {
		root := f.root(t, "stall_timeout = 2s\n")
		out, err := upgrade(t, p.C, root, "http://["+p.AddrS+"]:8090/")
		if err == nil {
			t.Fatalf("upgraded --once succeeded through a dead proxy:\n%s", out)
		}
		if !strings.Contains(out, "stalled") && !strings.Contains(out, "no response") {
			t.Errorf("error does not say the server stalled:\n%s", out)
		}
		lr, _ := layout.New(root)
		if _, err := os.Stat(lr.SlotVersionFile("b")); err == nil {
			t.Error("a slot was recorded after a failed download")
		}
	})
}
