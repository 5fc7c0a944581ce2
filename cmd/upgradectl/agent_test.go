package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStartAgent: pkttyagent is started for our process with a fallback,
// and the call waits until it says it is registered (it closes
// --notify-fd), as systemctl does.
func TestStartAgent(t *testing.T) {
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	script := filepath.Join(dir, "pkttyagent")
	// Registered: close fd 3 (the notify fd), note the arguments, then
	// stay up like an agent until stopped.
	body := "#!/bin/sh\necho \"$@\" > " + args + "\nexec 3>&-\nexec sleep 60\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	old := agentBinary
	t.Cleanup(func() { agentBinary = old })
	agentBinary = script
	a := startAgent(4242)
	defer a.stop()
	if a.cmd == nil {
		t.Fatal("no agent started")
	}
	b, err := os.ReadFile(args) // written before the notify fd closed
	if err != nil {
		t.Fatalf("the agent had not started when startAgent returned: %v", err)
	}
	want := "--notify-fd 3 --process " + strconv.Itoa(4242) + " --fallback"
	if got := strings.TrimSpace(string(b)); got != want {
		t.Errorf("pkttyagent %s, want %s", got, want)
	}
	a.stop()
	if a.cmd.ProcessState == nil {
		t.Error("stop did not wait for the agent")
	}
	agentBinary = filepath.Join(dir, "missing")
	if a := startAgent(1); a.cmd != nil {
		t.Error("an agent was started without pkttyagent")
	}
}
