package hostile

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/layout"
)

// throttle paces every response body at about bps bytes per second, so
// that a whole upgrade spreads over a second or more and a random kill
// lands in every phase, downloads included.
func (s *server) throttle(bps int) {
	s.mu.Lock()
	s.rate = bps
	s.mu.Unlock()
}

type pacedWriter struct {
	http.ResponseWriter
	rate int
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	const chunk = 1024
	n := 0
	for len(b) > 0 {
		k := min(chunk, len(b))
		m, err := p.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := p.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(time.Duration(k) * time.Second / time.Duration(p.rate))
		b = b[k:]
	}
	return n, nil
}

func (p *pacedWriter) Flush() {
	if f, ok := p.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func iterations(t *testing.T, env string, def int) int {
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q", env, s)
		}
		return n
	}
	return def
}

// TestKill9Upgrade kills the foreground engine (`upgraded --once
// --activate`, which ends with the pointer swing by the in-process security
// service) with SIGKILL at random moments of whole upgrades over a throttled
// server, then reruns it to completion. Every time: the active slot is
// intact, the boot pointer names slots that verify, and the bytes the server
// sent over both runs stay below a download from scratch; the rerun alone
// never needs more than a clean upgrade. UPGRADE_CRASH_ITERS sets the count
// (make test: 20; make crashtest: 200); UPGRADE_CRASH_SEED replays a run.
func TestKill9Upgrade(t *testing.T) {
	n := iterations(t, "UPGRADE_CRASH_ITERS", 20)
	seed := time.Now().UnixNano()
	if s := os.Getenv("UPGRADE_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (UPGRADE_CRASH_SEED replays it)", seed)
	rnd := rand.New(rand.NewSource(seed))
	const rate = 40 << 10

	// A clean, unthrottled-by-kills run: its duration spreads the kills, its
	// bytes bound the reruns. Provisioning v2 from nothing is "from scratch".
	clean := newWorld(t, 1)
	clean.srv.throttle(rate)
	keys := clean.writeKeys()
	clean.srv.sent.Store(0)
	binary(t, "upgraded") // build outside the timing
	start := time.Now()
	if out, err := clean.onceCmd(keys).CombinedOutput(); err != nil {
		t.Fatalf("clean run: %v\n%s", err, out)
	}
	span := time.Since(start)
	cleanBytes := clean.srv.sent.Load()
	scratch := newWorld(t, 2).provisionBytes
	t.Logf("clean upgrade: %v, %d bytes; from scratch: %d bytes", span.Round(time.Millisecond), cleanBytes, scratch)
	if p := clean.checkPointer(); p.Next != layout.SlotB {
		t.Fatalf("clean run left pointer %+v", p)
	}

	phases := map[string]int{}
	var worst int64
	for i := 0; i < n; i++ {
		w := newWorld(t, 1)
		w.srv.throttle(rate)
		keys := w.writeKeys()
		w.srv.sent.Store(0)
		delay := time.Duration(rnd.Int63n(int64(span) * 12 / 10))
		cmd := w.onceCmd(keys)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		phase := "finished"
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("iteration %d: run not killed failed: %v\n%s", i, err, out.Bytes())
			}
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			phase = killedIn(w)
		}
		phases[phase]++
		w.checkUntouchedActive()
		w.checkPointer()

		rerun, err := w.onceCmd(keys).CombinedOutput()
		if err != nil {
			t.Fatalf("iteration %d (killed at %v, %s): rerun: %v\n%s", i, delay, phase, err, rerun)
		}
		w.checkUntouchedActive()
		if p := w.checkPointer(); p.Next != layout.SlotB || !p.Trial {
			t.Fatalf("iteration %d: after the rerun the pointer is %+v, want slot b on trial", i, p)
		}
		total := w.srv.sent.Load()
		worst = max(worst, total)
		if total >= scratch {
			t.Fatalf("iteration %d (killed at %v, %s): %d bytes over both runs, from scratch is %d", i, delay, phase, total, scratch)
		}
	}
	t.Logf("%d kills: %v; worst total %d bytes (clean %d, scratch %d)", n, phases, worst, cleanBytes, scratch)
	fmt.Printf("BENCH kill9_ok %d/%d\n", n, n)
}

// killedIn names the phase the journal recorded when the process died.
func killedIn(w *world) string {
	j, err := engine.LoadJournal(w.cfg.Root)
	switch {
	case err != nil:
		return "journal-unreadable"
	case j == nil:
		if inst, _ := engine.LoadInstalled(w.cfg.Root, layout.SlotB); inst != nil {
			return "activating"
		}
		return "checking"
	}
	return string(j.Phase)
}
