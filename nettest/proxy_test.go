package nettest

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// The stalling proxy runs as this test binary re-executed inside the
// server's namespace (a Go test cannot move its own sockets there).
const proxyEnv = "NETTEST_STALL_PROXY" // "listen upstream stalls"

func TestMain(m *testing.M) {
	if spec := os.Getenv(proxyEnv); spec != "" {
		f := strings.Fields(spec)
		n, _ := strconv.Atoi(f[2])
		runProxy(f[0], f[1], n)
		return
	}
	os.Exit(m.Run())
}

// startProxy runs the proxy in ns: the first stalls connections (every
// one when stalls < 0) forward 64 KiB of the response and then go silent
// while keeping the connection open.
func startProxy(t *testing.T, ns, listen, upstream string, stalls int) {
	t.Helper()
	p := start(t, ns, []string{fmt.Sprintf("%s=%s %s %d", proxyEnv, listen, upstream, stalls)}, os.Args[0])
	waitFor(t, "the proxy to listen", func() bool { return strings.Contains(p.out.String(), "listening") })
}

func runProxy(listen, upstream string, stalls int) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("listening")
	var n atomic.Int32
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		stall := stalls < 0 || int(n.Add(1)) <= stalls
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			if !stall {
				io.Copy(c, u)
				return
			}
			io.CopyN(c, u, 64<<10)
			select {} // silent, open: only the client's stall timeout ends this
		}()
	}
}
