package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
)

// change is one PropertiesChanged as a client received it.
type change struct {
	at    time.Time
	props map[string]dbus.Variant
}

// finished is one Finished signal.
type finished struct {
	Job     uint32
	Success bool
	Name    string
	Message string
	sig     dbus.Signature
}

// watcher subscribes to the daemon's signals the way a client should:
// before it starts anything (AddMatch, then act, then read).
type watcher struct {
	t    *testing.T
	conn *dbus.Conn

	mu       sync.Mutex
	changes  []change
	finished []finished
	wake     chan struct{}
}

func (e *env) watch() *watcher {
	e.t.Helper()
	conn, err := dbus.Connect(e.bus.Addr, dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
	if err != nil {
		e.t.Fatalf("connect: %v", err)
	}
	w := &watcher{t: e.t, conn: conn, wake: make(chan struct{}, 1)}
	for _, m := range [][]dbus.MatchOption{
		{dbus.WithMatchSender(dbusapi.UpgradeName), dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged")},
		{dbus.WithMatchSender(dbusapi.UpgradeName), dbus.WithMatchInterface(dbusapi.UpgradeInterface), dbus.WithMatchMember("Finished")},
	} {
		if err := conn.AddMatchSignal(m...); err != nil {
			e.t.Fatalf("AddMatch: %v", err)
		}
	}
	ch := make(chan *dbus.Signal, 1024)
	conn.Signal(ch)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range ch {
			w.record(s)
		}
	}()
	e.t.Cleanup(func() {
		conn.RemoveSignal(ch)
		conn.Close()
		close(ch)
		<-done
	})
	return w
}

func (w *watcher) record(s *dbus.Signal) {
	if s.Path != dbusapi.UpgradePath {
		return
	}
	w.mu.Lock()
	switch s.Name {
	case "org.freedesktop.DBus.Properties.PropertiesChanged":
		if len(s.Body) >= 2 {
			if m, ok := s.Body[1].(map[string]dbus.Variant); ok {
				w.changes = append(w.changes, change{at: time.Now(), props: m})
			}
		}
	case dbusapi.UpgradeInterface + ".Finished":
		var f finished
		if err := dbus.Store(s.Body, &f.Job, &f.Success, &f.Name, &f.Message); err == nil {
			f.sig = dbus.SignatureOf(s.Body...)
			w.finished = append(w.finished, f)
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// waitFinished waits for the Finished signal of job.
func (w *watcher) waitFinished(job uint32, timeout time.Duration) finished {
	w.t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		for _, f := range w.finished {
			if f.Job == job {
				w.mu.Unlock()
				return f
			}
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-deadline:
			w.t.Fatalf("no Finished for job %d within %v; got %+v", job, timeout, w.allFinished())
		}
	}
}

func (w *watcher) allFinished() []finished {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]finished(nil), w.finished...)
}

func (w *watcher) allChanges() []change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]change(nil), w.changes...)
}

// upgradeObj is the daemon's object on conn.
func upgradeObj(conn *dbus.Conn) dbus.BusObject {
	return conn.Object(dbusapi.UpgradeName, dbusapi.UpgradePath)
}

// startUpgrade calls Upgrade(version, opts) as root and returns the job.
func (e *env) startUpgrade(conn *dbus.Conn, version string, opts map[string]dbus.Variant) uint32 {
	e.t.Helper()
	if opts == nil {
		opts = map[string]dbus.Variant{}
	}
	var job uint32
	if err := upgradeObj(conn).Call(dbusapi.UpgradeInterface+".Upgrade", 0, version, opts).Store(&job); err != nil {
		e.t.Fatalf("Upgrade(%q): %v", version, err)
	}
	return job
}

// props reads every property with GetAll.
func props(t *testing.T, conn *dbus.Conn) map[string]dbus.Variant {
	t.Helper()
	var m map[string]dbus.Variant
	if err := upgradeObj(conn).Call("org.freedesktop.DBus.Properties.GetAll", 0, dbusapi.UpgradeInterface).Store(&m); err != nil {
		t.Fatalf("GetAll: %v", err)
	}
	return m
}

// prop reads one property as a string (fmt.Sprint of its value).
func prop(t *testing.T, conn *dbus.Conn, name string) string {
	t.Helper()
	v, err := upgradeObj(conn).GetProperty(dbusapi.UpgradeInterface + "." + name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return fmt.Sprint(v.Value())
}

// waitState polls State until want(state) or the job ends; it returns the
// state it saw last. Polling Get, not waiting for PropertiesChanged, sees a
// phase even when it is shorter than the daemon's notification interval.
func waitState(t *testing.T, conn *dbus.Conn, timeout time.Duration, want func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := prop(t, conn, "State")
		if want(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state still %q after %v", st, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// history returns the daemon's History as plain maps, newest first.
func history(t *testing.T, conn *dbus.Conn) []map[string]any {
	t.Helper()
	var hs []map[string]dbus.Variant
	if err := upgradeObj(conn).Call(dbusapi.UpgradeInterface+".History", 0).Store(&hs); err != nil {
		t.Fatalf("History: %v", err)
	}
	var out []map[string]any
	for _, h := range hs {
		m := map[string]any{}
		for k, v := range h {
			m[k] = v.Value()
		}
		out = append(out, m)
	}
	return out
}

// dbusErrName is the D-Bus error name in err ("" if none).
func dbusErrName(err error) string {
	if err == nil {
		return ""
	}
	if de, ok := err.(dbus.Error); ok {
		return de.Name
	}
	if de, ok := err.(*dbus.Error); ok {
		return de.Name
	}
	return "not a D-Bus error: " + err.Error()
}

// dbusErrMsg is the message of a D-Bus error.
func dbusErrMsg(err error) string {
	var body []any
	if de, ok := err.(dbus.Error); ok {
		body = de.Body
	} else if de, ok := err.(*dbus.Error); ok {
		body = de.Body
	}
	if len(body) > 0 {
		if s, ok := body[0].(string); ok {
			return s
		}
	}
	return ""
}
