// Package netns builds small test networks out of network namespaces: two
// namespaces joined by a veth pair, with IPv6 ULA addresses from
// fd42:feed::/64 (never fd00::/64, the build machine's own network) and
// link-local addresses, all added with nodad so they are usable at once.
// Clients and servers run under `ip netns exec`; nothing touches the host's
// own namespace, and everything is deleted at test cleanup, on every path.
package netns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

var seq atomic.Int32

// Pair is two namespaces joined by a veth pair: the server side S and the
// client side C.
type Pair struct {
	S, C     string // namespace names
	IfS, IfC string // interface names inside them
	// ULA addresses (fd42:feed::1 server, ::2 client) and link-local ones
	// (fe80::1, fe80::2).
	AddrS, AddrC, LLS, LLC string
}

// Run runs a command and fails the test with its output on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewPair creates the namespaces and the link.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("netns: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("netns: ip (iproute2) not found: %v", err)
	}
	n := seq.Add(1)
	p := &Pair{
		S: fmt.Sprintf("upg%d-%d-s", os.Getpid(), n), C: fmt.Sprintf("upg%d-%d-c", os.Getpid(), n),
		IfS: "veth-s", IfC: "veth-c",
		AddrS: "fd42:feed::1", AddrC: "fd42:feed::2", LLS: "fe80::1", LLC: "fe80::2",
	}
	for _, ns := range []string{p.S, p.C} {
		Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// Create the pair in the server namespace and move one end: no
	// interface ever appears in the host's namespace.
	Run(t, "ip", "-n", p.S, "link", "add", p.IfS, "type", "veth", "peer", "name", p.IfC, "netns", p.C)
	for _, side := range []struct{ ns, ifc, ula, ll string }{{p.S, p.IfS, p.AddrS, p.LLS}, {p.C, p.IfC, p.AddrC, p.LLC}} {
		// Keep addresses across link down/up, as NetworkManager would put
		// them back: the tests are about the daemon, not address config.
		Run(t, "ip", "netns", "exec", side.ns, "sysctl", "-q", "-w", "net.ipv6.conf."+side.ifc+".keep_addr_on_down=1")
		Run(t, "ip", "-n", side.ns, "addr", "add", side.ula+"/64", "dev", side.ifc, "nodad")
		Run(t, "ip", "-n", side.ns, "addr", "add", side.ll+"/64", "dev", side.ifc, "nodad")
		Run(t, "ip", "-n", side.ns, "link", "set", side.ifc, "up")
	}
	return p
}

// Command returns a command running in namespace ns.
func Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// SetLink sets the client's interface up or down.
func (p *Pair) SetLink(t testing.TB, up bool) {
	t.Helper()
	st := "down"
	if up {
		st = "up"
	}
	Run(t, "ip", "-n", p.C, "link", "set", p.IfC, st)
}
