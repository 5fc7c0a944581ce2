package sugartest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/internal/testbus"
)

// serveControl starts the control server the Python tests call (see
// contrib/sugar/tests/harness.py) and returns its base URL. Every request
// runs under the fixture's lock, so a reset never overlaps a kill.
func (f *fixture) serveControl(t *testing.T) string {
	mux := http.NewServeMux()
	handle := func(pattern string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			v, err := fn(r)
			f.mu.Unlock()
			if err != nil {
				t.Logf("control %s: %v", r.URL.Path, err)
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v)
		})
	}
	handle("POST /reset", func(*http.Request) (any, error) { return nil, f.reset() })
	handle("POST /hold", func(r *http.Request) (any, error) {
		n, err := strconv.ParseInt(r.FormValue("after"), 10, 64)
		if err != nil {
			n = holdBytes
		}
		f.gate.Hold(n)
		return map[string]int64{"after": n, "size": bigSize}, nil
	})
	handle("POST /release", func(*http.Request) (any, error) { f.gate.Release(); return nil, nil })
	handle("POST /mirror", func(r *http.Request) (any, error) {
		f.gate.SetDown(r.FormValue("down") == "1")
		return nil, nil
	})
	handle("POST /daemon/kill", func(*http.Request) (any, error) { f.killUpgraded(); return nil, nil })
	handle("POST /daemon/start", func(*http.Request) (any, error) { return nil, f.startUpgraded() })
	handle("GET /reboots", func(*http.Request) (any, error) { return f.login1.list(), nil })
	handle("GET /info", func(*http.Request) (any, error) {
		return map[string]string{"root": f.root, "mirror": f.mirror, "bus": f.bus.Addr}, nil
	})

	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// login1 stands in for systemd-logind's Manager: it records Reboot calls
// instead of rebooting, so a test can assert that "Restart now" asked.
type login1 struct {
	mu    sync.Mutex
	calls []bool // the interactive argument of each Reboot
}

const (
	login1Name  = "org.freedesktop.login1"
	login1Path  = dbus.ObjectPath("/org/freedesktop/login1")
	login1Iface = "org.freedesktop.login1.Manager"
)

// login1Policy lets root own the name and anyone call the Manager, as
// logind's own policy file does (the test bus includes no machine files).
const login1Policy = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="org.freedesktop.login1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.login1" send_interface="org.freedesktop.login1.Manager"/>
  </policy>
</busconfig>
`

func startLogin1(t *testing.T, bus *testbus.Bus, conn *dbus.Conn) *login1 {
	t.Helper()
	if err := os.WriteFile(filepath.Join(bus.Dir, "system.d", "sugartest-login1.conf"), []byte(login1Policy), 0o644); err != nil {
		t.Fatal(err)
	}
	// ReloadConfig answers once the new policy is in force; dbus-daemon's
	// own inotify reload would race with RequestName below.
	if err := conn.BusObject().Call("org.freedesktop.DBus.ReloadConfig", 0).Err; err != nil {
		t.Fatalf("reload bus config: %v", err)
	}
	l := &login1{}
	if err := conn.ExportMethodTable(map[string]any{"Reboot": l.reboot}, login1Path, login1Iface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(login1Name, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: reply %v, %v", login1Name, reply, err)
	}
	return l
}

func (l *login1) reboot(interactive bool) *dbus.Error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, interactive)
	return nil
}

func (l *login1) list() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool{}, l.calls...)
}

func (l *login1) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = nil
}

// String helps failure messages.
func (l *login1) String() string { return fmt.Sprint(l.list()) }
