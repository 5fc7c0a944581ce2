package netmon

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"laptop.org/upgrade/errdefs"
)

// inNS marks the child test process that runs inside a fresh network
// namespace (unshare -n), where it may add and remove links freely.
const inNS = "NETMON_TEST_IN_NETNS"

// TestNetns re-runs the TestNS* tests of this binary in a private network
// namespace, so they never touch the host's network.
func TestNetns(t *testing.T) {
	if os.Getenv(inNS) != "" {
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (network namespaces)")
	}
	cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run=^TestNS", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNS+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("netns child: %v", err)
	}
}

func child(t *testing.T) {
	if os.Getenv(inNS) == "" {
		t.Skip("runs inside the namespace made by TestNetns")
	}
}

func addVeth(t *testing.T) netlink.Link {
	t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = "tv0"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "tv1"}); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName("tv0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(l) })
	// Keep addresses over down/up, as NetworkManager would restore them.
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/tv0/keep_addr_on_down", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	peer, _ := netlink.LinkByName("tv1")
	for _, a := range []string{"fd42:feed::2/64", "fe80::2/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = 0x02 // IFA_F_NODAD
		if err := netlink.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
	}
	netlink.LinkSetUp(peer)
	netlink.LinkSetUp(l)
	return l
}

// poll waits for cond, generously.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestNSWaitRoute(t *testing.T) {
	child(t)
	goroutines := runtime.NumGoroutine()
	m, err := New(Options{Debounce: 50 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	mirrors := []string{"http://[fd42:feed::1]:8080/"}
	ll := []string{"http://[fe80::1%25tv0]:8080/"}

	// No link: a bounded wait fails with a network error that says why.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = m.WaitRoute(ctx, mirrors)
	cancel()
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("WaitRoute without a link: %v", err)
	}
	t.Logf("error: %v", err)
	if got := m.Reachable(context.Background(), []string{"file:///srv/repo"}); got == "" {
		t.Fatal("file mirror not reachable")
	}

	var calls atomic.Int32
	unregister := m.RegisterChangeCallback(func(ChangeDelta) { calls.Add(1) })
	// The link appears while we wait: WaitRoute wakes on the change.
	got := make(chan error, 1)
	go func() {
		_, err := m.WaitRoute(context.Background(), mirrors)
		got <- err
	}()
	l := addVeth(t)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	poll(t, "a change callback", func() bool { return calls.Load() > 0 })
	poll(t, "link-local mirror reachable", func() bool { return m.Reachable(context.Background(), ll) != "" })

	// Link down: both mirrors are unreachable; up again: reachable.
	netlink.LinkSetDown(l)
	poll(t, "unreachable after link down", func() bool {
		return m.Reachable(context.Background(), mirrors) == "" && m.Reachable(context.Background(), ll) == ""
	})
	netlink.LinkSetUp(l)
	poll(t, "reachable after link up", func() bool { return m.Reachable(context.Background(), mirrors) != "" })

	// An address storm is debounced into far fewer callbacks.
	before := calls.Load()
	for i := range 200 {
		a, _ := netlink.ParseAddr("fd42:feed:0:1::" + itoa(i+1) + "/128")
		a.Flags = 0x02
		netlink.AddrAdd(l, a)
	}
	poll(t, "storm seen", func() bool {
		for _, lk := range m.State().Links {
			if lk.Name == "tv0" && len(lk.Addrs) >= 202 {
				return true
			}
		}
		return false
	})
	if n := calls.Load() - before; n >= 100 {
		t.Errorf("200 address changes gave %d callbacks; debounce is not working", n)
	}
	unregister()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m.Close() // idempotent
	poll(t, "goroutines to exit after Close", func() bool { return runtime.NumGoroutine() <= goroutines })
}

func itoa(i int) string {
	return string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

// TestNSPersist: a link lost mid-attempt cancels it with ErrLinkLost; the
// next attempt starts once the link is back.
func TestNSPersist(t *testing.T) {
	child(t)
	m, err := New(Options{Debounce: 50 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l := addVeth(t)
	mirrors := []string{"http://[fd42:feed::1]:8080/"}
	if _, err := m.WaitRoute(context.Background(), mirrors); err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	causes := make(chan error, 4)
	err = m.Persist(context.Background(), mirrors, time.Minute, func(ctx context.Context) error {
		switch attempts.Add(1) {
		case 1:
			netlink.LinkSetDown(l)
			<-ctx.Done() // a download stuck on a dead link
			causes <- context.Cause(ctx)
			go func() { time.Sleep(200 * time.Millisecond); netlink.LinkSetUp(l) }()
			return ctx.Err()
		}
		return nil
	})
	if err != nil || attempts.Load() != 2 {
		t.Fatalf("Persist: %v after %d attempts", err, attempts.Load())
	}
	if c := <-causes; !errors.Is(c, ErrLinkLost) {
		t.Fatalf("first attempt cancelled with %v", c)
	}

	// A network error while the route is there is final.
	err = m.Persist(context.Background(), mirrors, time.Minute, func(ctx context.Context) error {
		return errdefs.ErrNetwork
	})
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("got %v", err)
	}
	// The route never returns within the wait: a clear error, no hang.
	netlink.LinkSetDown(l)
	poll(t, "unreachable", func() bool { return m.Reachable(context.Background(), mirrors) == "" })
	err = m.Persist(context.Background(), mirrors, 300*time.Millisecond, func(ctx context.Context) error { return nil })
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("got %v", err)
	}
	t.Logf("error: %v", err)
}

func TestIsOverrun(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("Receive failed: no buffer space available"), true},
		{errors.New("Wrong sender portid 5, expected 0"), false},
		{nil, false},
	} {
		if got := isOverrun(tc.err); got != tc.want {
			t.Errorf("isOverrun(%v) = %v", tc.err, got)
		}
	}
}
