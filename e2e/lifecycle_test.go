package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/layout"
)

// interrupt starts upgradectl with args, sends it SIGINT once the job is
// downloading, and returns what it did.
func (e *env) interrupt(args ...string) result {
	t := e.t
	t.Helper()
	cmd := exec.Command(bin("upgradectl"), args...)
	cmd.Env = e.bus.Env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.conn(), jobTimeout, func(s string) bool { return s == "downloading" })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(jobTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("upgradectl %v did not exit after SIGINT", args)
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	return r
}

// TestUpgradectlInterrupt: Ctrl-C on a watching upgradectl leaves the job
// running and says so (and `upgradectl watch` follows it to the end),
// unless --cancel-on-interrupt, which cancels it.
func TestUpgradectlInterrupt(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	e.srv.setRate(slowRate / 2)

	r := e.interrupt("upgrade", "--cancel-on-interrupt")
	if r.code != 1 || !strings.Contains(r.stderr, "cancelling job") || !strings.Contains(r.stdout, "failed") {
		t.Errorf("upgradectl upgrade --cancel-on-interrupt, interrupted: want exit 1 after the cancel:\n%s", r)
	}
	conn := e.conn()
	if hs := history(t, conn); len(hs) != 1 || hs[0]["error_name"] != dbusapi.ErrCancelled {
		t.Errorf("History after the cancel: %v", hs)
	}

	r = e.interrupt("upgrade")
	if r.code != 130 || !strings.Contains(r.stderr, "keeps running in the background") {
		t.Errorf("upgradectl upgrade, interrupted: want exit 130 and the job left running:\n%s", r)
	}
	if st := prop(t, conn, "State"); st != "downloading" {
		t.Errorf("after the interrupt the job is %q, want still downloading", st)
	}
	e.srv.setRate(0)
	r = e.ctl(0, "watch")
	if r.code != 0 || !strings.Contains(r.stdout, "finished: version 2 is ready in slot b") {
		t.Errorf("upgradectl watch:\n%s", r)
	}
	if p := e.pointer(); p.Next != layout.SlotB || !p.Trial {
		t.Errorf("pointer after the watched job: %+v", p)
	}
}

// TestRestartKeepsState: a daemon stopped with SIGTERM mid-download
// resumes the job when it starts again (one Finished, marked resumed), and
// a restart after that changes nothing a client can see: properties and
// history survive.
func TestRestartKeepsState(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	w := e.watch()
	conn := e.conn()
	e.srv.setRate(slowRate / 2)
	job := e.startUpgrade(conn, "", nil)
	waitState(t, conn, jobTimeout, func(s string) bool { return s == "downloading" })
	e.restartUpgraded()
	e.srv.setRate(0)
	if f := w.waitFinished(job, jobTimeout); !f.Success {
		t.Fatalf("job resumed after SIGTERM: %+v", f)
	}
	if r := e.ctl(0, "check"); r.code != 3 {
		t.Errorf("check: want exit 3:\n%s", r)
	}

	before, hBefore := props(t, conn), history(t, conn)
	e.restartUpgraded()
	after, hAfter := props(t, conn), history(t, conn)
	// BytesDone and BytesTotal describe a download in progress; the rest
	// describes the machine and the last job, and must survive.
	for _, m := range []map[string]dbus.Variant{before, after} {
		delete(m, "BytesDone")
		delete(m, "BytesTotal")
	}
	if diff := cmp.Diff(plainProps(before), plainProps(after)); diff != "" {
		t.Errorf("properties changed across a restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(hBefore, hAfter); diff != "" {
		t.Errorf("history changed across a restart (-before +after):\n%s", diff)
	}
	if n := len(w.allFinished()); n != 1 {
		t.Errorf("%d Finished signals, want exactly one: %+v", n, w.allFinished())
	}
	if len(hAfter) != 1 || hAfter[0]["resumed"] != true {
		t.Errorf("History = %v, want the one job marked resumed", hAfter)
	}
	b, _ := json.Marshal(plainProps(after))
	t.Logf("after restarts: %s", b)
}

// restartUpgraded stops upgraded with SIGTERM, as systemd does, and starts
// it again.
func (e *env) restartUpgraded() {
	t := e.t
	t.Helper()
	p := e.upgraded
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(readyTimeout):
		t.Fatalf("upgraded did not stop on SIGTERM:\n%s", p.log)
	}
	if !strings.Contains(p.log.String(), "stopping") {
		t.Errorf("upgraded did not log its stop:\n%s", p.log)
	}
	e.startUpgraded()
}

// plainProps turns GetAll's variants into comparable values.
func plainProps(m map[string]dbus.Variant) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v.Value()
	}
	return out
}
