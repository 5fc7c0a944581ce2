// Package proc starts the servers a benchmark needs (rsync daemons, HTTP
// servers, dbus-daemon, our daemons) with their output in a log file, and
// stops them the same way everywhere.
package proc

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Start runs name with args in the background, stdout and stderr into
// logPath, with env (nil: this process's). stop sends SIGTERM, then
// SIGKILL after 5 s, and waits for the process.
func Start(logPath string, env []string, name string, args ...string) (stop func(), pid int, err error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, 0, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}, cmd.Process.Pid, nil
}
