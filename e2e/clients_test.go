package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/layout"
)

// jobFrom finds the job id in a client's output: the last number on the
// line that carries it ("u 1", "(uint32 1,)", "   uint32 1").
func jobFrom(t *testing.T, r result, pattern string) uint32 {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("no job id (pattern %q) in:\n%s", pattern, r)
	}
	n, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// slowRate makes the small repository's upgrade (about 22 kB) take a few
// seconds, so that a client sees its phases go by.
const slowRate = 10 << 10

// TestUpgradeThroughClients upgrades a fresh v1 root to v2 through each real
// client a person or program would use, and checks the whole outcome: the
// Finished signal, the properties, the boot pointer on disk, the untouched
// active slot, upgradectl's view and the history.
func TestUpgradeThroughClients(t *testing.T) {
	rp := smallRepo(t)
	script, err := filepath.Abs("testdata/sugar_client.py")
	if err != nil {
		t.Fatal(err)
	}
	clients := []struct {
		name  string
		start func(e *env) uint32
	}{
		{"busctl", func(e *env) uint32 {
			r := e.run(0, "busctl", "--system", "call", "org.laptop.Upgrade1", "/org/laptop/Upgrade1",
				"org.laptop.Upgrade1", "Upgrade", "sa{sv}", "", "0")
			return jobFrom(e.t, r, `^u (\d+)`)
		}},
		{"gdbus", func(e *env) uint32 {
			r := e.run(0, "gdbus", "call", "--system", "--dest", "org.laptop.Upgrade1", "--object-path", "/org/laptop/Upgrade1",
				"--method", "org.laptop.Upgrade1.Upgrade", "", "{}")
			return jobFrom(e.t, r, `^\(uint32 (\d+),\)`)
		}},
		{"dbus-send", func(e *env) uint32 {
			// dbus-send cannot write an a{sv}; UpgradeTo is Upgrade with
			// default options for exactly this kind of client.
			r := e.run(0, "dbus-send", "--system", "--print-reply", "--dest=org.laptop.Upgrade1",
				"/org/laptop/Upgrade1", "org.laptop.Upgrade1.UpgradeTo", "string:")
			return jobFrom(e.t, r, `(?m)^\s+uint32 (\d+)`)
		}},
		{"python-glib", func(e *env) uint32 {
			// Slow enough that the client sees the phases go by.
			e.srv.setRate(slowRate)
			r := e.run(0, "/usr/bin/python3", script)
			var out struct {
				Job      uint32
				States   []string
				Progress []int
				Changes  int
				Error    *string
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
				e.t.Fatalf("python client: %v\n%s", err, r)
			}
			// The client saw the job move through the phases as Sugar would
			// show them, with progress that never went backwards.
			for _, want := range []string{"downloading", "ready-to-reboot"} {
				if !contains(out.States, want) {
					e.t.Errorf("python client saw states %v, want %q among them", out.States, want)
				}
			}
			for i := 1; i < len(out.Progress); i++ {
				if out.Progress[i] < out.Progress[i-1] {
					e.t.Errorf("progress went backwards: %v", out.Progress)
					break
				}
			}
			e.t.Logf("python client: %d PropertiesChanged, states %v, progress %v", out.Changes, out.States, out.Progress)
			return out.Job
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, rp, envOpts{})
			before := snapshot(t, e.lr.Slot(layout.SlotA))
			w := e.watch()
			job := c.start(e)
			f := w.waitFinished(job, jobTimeout)
			if f.Name != "" || !f.Success {
				t.Fatalf("Finished = %+v, want success", f)
			}
			e.assertReady(job, before)
		})
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// assertReady checks everything a finished upgrade to v2 promises.
func (e *env) assertReady(job uint32, before map[string]testtree.Node) {
	t := e.t
	t.Helper()
	conn := e.conn()
	if got := prop(t, conn, "NextBootSlot"); got != "b" {
		t.Errorf("NextBootSlot = %q, want b", got)
	}
	p := e.pointer()
	if p.Next != layout.SlotB || !p.Trial || p.Good != layout.SlotA {
		t.Errorf("boot pointer = %+v, want next b on trial, good a", p)
	}
	if diff := cmp.Diff(before, snapshot(t, e.lr.Slot(layout.SlotA))); diff != "" {
		t.Errorf("active slot changed (-before +after):\n%s", diff)
	}
	if inst, err := engine.LoadInstalled(e.lr, layout.SlotB); err != nil || inst.Version != 2 {
		t.Errorf("slot b record: %+v, %v; want version 2", inst, err)
	}
	r := e.ctl(0, "--json", "status")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("upgradectl --json status: %v\n%s", err, r)
	}
	want := map[string]any{"State": "ready-to-reboot", "BootedSlot": "a", "NextBootSlot": "b",
		"CurrentVersion": "1", "NextBootVersion": "2", "TargetVersion": "2", "Job": float64(job),
		"Progress": float64(100), "LastError": "", "AvailableVersion": ""}
	got := map[string]any{}
	for k := range want {
		got[k] = st[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("upgradectl --json status (-want +got):\n%s", diff)
	}
	hs := history(t, conn)
	if len(hs) == 0 || hs[0]["job"] != job || hs[0]["success"] != true || hs[0]["version"] != "2" {
		t.Errorf("History()[0] = %v, want job %d, version 2, success", first(hs), job)
	}
}

func first(hs []map[string]any) map[string]any {
	if len(hs) == 0 {
		return nil
	}
	return hs[0]
}

// TestUpgradectl drives the whole cycle with upgradectl: check finds v2,
// upgrade follows the job to the end, check then has nothing to do,
// rollback withdraws the pending version, and upgrade brings it back
// without downloading it again.
func TestUpgradectl(t *testing.T) {
	rp := smallRepo(t)
	e := newEnv(t, rp, envOpts{})
	before := snapshot(t, e.lr.Slot(layout.SlotA))

	r := e.ctl(0, "check")
	if r.code != 0 || !strings.Contains(r.stdout, "version 2 is available") {
		t.Fatalf("check before the upgrade: want exit 0 and version 2 available:\n%s", r)
	}
	e.srv.setRate(slowRate)
	r = e.ctl(0, "upgrade")
	if r.code != 0 {
		t.Fatalf("upgradectl upgrade:\n%s", r)
	}
	e.srv.setRate(0)
	// Not a terminal: one plain line per phase and per 10 %, then the end.
	for _, want := range []string{": downloading", "finished: version 2 is ready in slot b"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("upgradectl upgrade output lacks %q:\n%s", want, r.stdout)
		}
	}
	job := jobFrom(t, r, `job (\d+) finished`)
	e.assertReady(job, before)

	// Up to date is relative to what the next boot runs: v2 is installed and
	// boots next, so there is nothing to do (exit 3) although v1 runs.
	r = e.ctl(0, "check")
	if r.code != 3 || !strings.Contains(r.stdout, "version 2 is ready in slot b") {
		t.Errorf("check after the upgrade: want exit 3 and version 2 ready:\n%s", r)
	}

	// Withdrawing the pending version needs no restart, and says so.
	r = e.ctl(0, "rollback")
	if r.code != 0 || !strings.Contains(r.stdout, "upgrade to version 2 was withdrawn") || !strings.Contains(r.stdout, "no restart needed") {
		t.Fatalf("rollback of the pending version:\n%s", r)
	}
	if p := e.pointer(); p.Next != layout.SlotA || p.Trial || p.Good != layout.SlotA {
		t.Errorf("after rollback the pointer is %+v, want next a, good a, no trial", p)
	}
	conn := e.conn()
	if st, nb := prop(t, conn, "State"), prop(t, conn, "NextBootSlot"); st != "idle" || nb != "a" {
		t.Errorf("after rollback State %q NextBootSlot %q, want idle and a", st, nb)
	}
	// v2 is still built in slot b: check offers it again, and upgrade only
	// has to activate it.
	r = e.ctl(0, "check")
	if r.code != 0 {
		t.Errorf("check after rollback: want exit 0 (v2 can be activated):\n%s", r)
	}
	e.srv.reset()
	if r = e.ctl(0, "upgrade"); r.code != 0 {
		t.Fatalf("upgrade after rollback:\n%s", r)
	}
	e.assertReady(jobFrom(t, r, `job (\d+) finished`), before)
	if objs := e.srv.sent.Load(); objs > 64<<10 {
		t.Errorf("re-activating a built slot downloaded %d bytes; want only the index", objs)
	}
	// Withdraw it again; with slot b's signed record gone, nothing else
	// verifies, and rolling back fails with a name and a reason.
	if r = e.ctl(0, "rollback"); r.code != 0 {
		t.Fatalf("second rollback:\n%s", r)
	}
	if err := os.RemoveAll(e.lr.SlotMetaDir(layout.SlotB)); err != nil {
		t.Fatal(err)
	}
	r = e.ctl(0, "rollback")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot roll back") {
		t.Errorf("rollback to an unverifiable slot: want exit 1 and a reason:\n%s", r)
	}
	if p := e.pointer(); p.Next != layout.SlotA {
		t.Errorf("a refused rollback moved the pointer: %+v", p)
	}
}

// TestDocExamplePython runs the Python example of docs/dbus-api.md as it is
// written there, so the documentation cannot drift from the API.
func TestDocExamplePython(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "dbus-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no python example in docs/dbus-api.md")
	}
	script := filepath.Join(t.TempDir(), "example.py")
	if err := os.WriteFile(script, m[1], 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, smallRepo(t), envOpts{})
	r := e.run(0, "/usr/bin/python3", script)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || lines[len(lines)-1] != "done" {
		t.Fatalf("the documented Python example did not end with \"done\":\n%s", r)
	}
	if p := e.pointer(); p.Next != layout.SlotB {
		t.Errorf("pointer after the documented example: %+v", p)
	}
}
