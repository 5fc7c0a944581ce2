package systemd

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// notifySocket listens like the service manager's notify socket in a temp
// dir and returns the channel of datagrams received.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", path)
	ch := make(chan string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return ch
}

// recv waits (generously) for the next datagram.
func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no notification within 30s")
	}
	return ""
}

func TestNotifyOutcomes(t *testing.T) {
	t.Run("sent", func(t *testing.T) {
		ch := notifySocket(t)
		n := NewNotifier(t.Logf)
		if o := n.Ready("idle"); o != Sent {
			t.Fatalf("Ready: %v", o)
		}
		if o := n.Status("downloading 10%"); o != Sent {
			t.Fatalf("Status: %v", o)
		}
		n.Status("downloading 10%") // unchanged: not sent again
		n.Stopping("stopping")
		var got []string
		for range 3 {
			got = append(got, recv(t, ch))
		}
		want := []string{"READY=1\nSTATUS=idle", "STATUS=downloading 10%", "STOPPING=1\nSTATUS=stopping"}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("messages (-want +got):\n%s", d)
		}
	})
	t.Run("not under systemd", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", "")
		o, err := NewNotifier(t.Logf).Notify("READY=1")
		if o != NotSystemd || err != nil {
			t.Fatalf("got %v, %v; want not under systemd", o, err)
		}
	})
	t.Run("failed, logged once", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
		var lines []string
		n := NewNotifier(func(f string, a ...any) { lines = append(lines, f) })
		for range 3 {
			if o, err := n.Notify("STATUS=x"); o != Failed || err == nil {
				t.Fatalf("got %v, %v; want failed", o, err)
			}
		}
		if len(lines) != 1 {
			t.Fatalf("logged %d lines, want 1: %q", len(lines), lines)
		}
	})
}

func TestWatchdog(t *testing.T) {
	ch := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms
	w := NewWatchdog(NewNotifier(t.Logf))
	if w.Interval() != 200*time.Millisecond {
		t.Fatalf("interval %v", w.Interval())
	}
	// Progress pings are rate-limited to a quarter interval: a burst of
	// callbacks sends one ping.
	now := time.Unix(1000, 0)
	w.now = func() time.Time { return now }
	for range 100 {
		w.Ping()
	}
	if got := recv(t, ch); got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	now = now.Add(time.Second)
	w.Ping()
	if got := recv(t, ch); got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	select {
	case s := <-ch:
		t.Fatalf("burst sent more than one ping per quarter interval: %q", s)
	default:
	}

	t.Run("wrong pid", func(t *testing.T) {
		t.Setenv("WATCHDOG_PID", "1")
		if NewWatchdog(NewNotifier(t.Logf)).Interval() != 0 {
			t.Fatal("watchdog for another pid enabled")
		}
	})
	t.Run("unset", func(t *testing.T) {
		t.Setenv("WATCHDOG_USEC", "")
		w := NewWatchdog(NewNotifier(t.Logf))
		w.Ping()
		w.RunIdle(context.Background(), func() bool { return false }) // returns at once
	})
}

// TestRunIdle: the idle ticker pings while idle and goes silent while busy.
func TestRunIdle(t *testing.T) {
	ch := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "40000")
	w := NewWatchdog(NewNotifier(t.Logf))
	busy := make(chan bool, 1)
	busy <- false
	cur := false
	isBusy := func() bool {
		select {
		case cur = <-busy:
		default:
		}
		return cur
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.RunIdle(ctx, isBusy); close(done) }()
	defer func() { cancel(); <-done }()
	for range 3 {
		if got := recv(t, ch); got != "WATCHDOG=1" {
			t.Fatalf("got %q", got)
		}
	}
	busy <- true
	// Wait until the ticker has seen busy, then drain: no ping may follow.
	for len(busy) > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	for len(ch) > 0 {
		<-ch
	}
	time.Sleep(200 * time.Millisecond) // 10 ticker periods
	if n := len(ch); n > 0 {
		t.Fatalf("%d pings while busy: %q", n, strings.TrimSpace(<-ch))
	}
}

// For the external tests (service_test.go).
var (
	NotifySocketForTest = notifySocket
	RecvForTest         = recv
)
