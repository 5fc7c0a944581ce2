package main

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// agent is a polkit text agent (pkttyagent) registered for this process,
// as systemctl starts one: an admin who is not root, over ssh for
// example, is asked for a password on the terminal instead of being
// refused. The daemon lets polkit ask because our calls carry
// ALLOW_INTERACTIVE_AUTHORIZATION.
type agent struct{ cmd *exec.Cmd }

// agentBinary is pkttyagent's name (a variable for tests).
var agentBinary = "pkttyagent"

// wantAgent: only a person at a terminal can answer, and root needs none.
func wantAgent() bool {
	if os.Geteuid() == 0 {
		return false
	}
	_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	return err == nil
}

func (c *cli) startAgent() {
	if c.agent != nil || !wantAgent() {
		return
	}
	c.agent = startAgent(os.Getpid())
}

// startAgent runs pkttyagent for pid and waits until it is registered
// (it closes --notify-fd then), so the call that follows can be
// authenticated. A missing pkttyagent is no error: polkit then refuses
// what needs a password, and the daemon says so.
func startAgent(pid int) *agent {
	path, err := exec.LookPath(agentBinary)
	if err != nil {
		return &agent{}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return &agent{}
	}
	defer r.Close()
	cmd := exec.Command(path, "--notify-fd", "3", "--process", strconv.Itoa(pid), "--fallback")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return &agent{}
	}
	// EOF on the pipe: registered (or exited). Bounded, so a hung agent
	// does not hang the command.
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.Copy(io.Discard, r)
	return &agent{cmd: cmd}
}

func (a *agent) stop() {
	if a == nil || a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = a.cmd.Process.Signal(unix.SIGTERM)
	_ = a.cmd.Wait()
}
