package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/report"
)

// Runner starts workers.
type Runner struct {
	Path string   // the worker's executable
	Name string   // its argv[0] (default Path)
	Args []string // arguments after argv[0]
	// Env is the worker's environment (nil: the daemon's, less
	// NOTIFY_SOCKET: only the daemon talks to the service manager).
	Env []string
	// Grace is how long a cancelled worker may take to stop before it is
	// killed (default 30 s); its journal makes a kill safe.
	Grace time.Duration
}

// Handler receives a worker's events, on the goroutine that called Run.
type Handler struct {
	Progress func(report.Progress)
	// BeforeWrite answers the worker's question before it writes slot
	// (Request.AskBeforeWrite).
	BeforeWrite func(layout.Slot) error
}

// Outcome is what a worker reported at its end, and what it cost.
type Outcome struct {
	Result   *report.Result
	UpToDate bool
	Next     *Activated // Request.Activate
	Pid      int
	PeakRSS  int64 // bytes (getrusage's ru_maxrss)
}

// Run starts one worker for req, passes its events to h and returns its
// outcome. Cancelling ctx sends the worker SIGTERM, then SIGKILL after
// Grace. A worker that ends without an outcome is an error wrapping
// errdefs.ErrWorkerCrashed (or errdefs.ErrCancelled when ctx was
// cancelled: it was stopped, as asked).
func (r *Runner) Run(ctx context.Context, req Request, h Handler) (Outcome, error) {
	// The worker's parent-death signal fires when the thread that started
	// it ends, not the process: keep this goroutine on its thread until
	// the worker is reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd, stdin, events, err := r.start(req)
	if err != nil {
		return Outcome{}, fmt.Errorf("start worker: %w", err)
	}
	reaped := make(chan struct{})
	go r.stopOnCancel(ctx, cmd.Process, reaped)
	o, readErr := read(events, stdin, h)
	events.Close()
	stdin.Close()
	waitErr := cmd.Wait()
	close(reaped)
	out := Outcome{Pid: cmd.Process.Pid}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		out.PeakRSS = ru.Maxrss << 10
	}
	switch {
	case o != nil:
		out.Result, out.UpToDate, out.Next = o.Result, o.UpToDate, o.Next
		return out, o.Error.Decode()
	case ctx.Err() != nil:
		return out, fmt.Errorf("worker pid %d stopped (%s): %w", out.Pid, exitText(waitErr), errdefs.ErrCancelled)
	}
	msg := exitText(waitErr)
	if readErr != nil {
		msg += "; " + readErr.Error()
	}
	return out, fmt.Errorf("the job's worker (pid %d) ended without a result: %s: %w", out.Pid, msg, errdefs.ErrWorkerCrashed)
}

func (r *Runner) grace() time.Duration {
	if r.Grace > 0 {
		return r.Grace
	}
	return 30 * time.Second
}

// stopOnCancel sends p SIGTERM when ctx is cancelled, and SIGKILL if it
// still runs after Grace.
func (r *Runner) stopOnCancel(ctx context.Context, p *os.Process, reaped <-chan struct{}) {
	select {
	case <-reaped:
		return
	case <-ctx.Done():
	}
	_ = p.Signal(syscall.SIGTERM)
	t := time.NewTimer(r.grace())
	defer t.Stop()
	select {
	case <-reaped:
	case <-t.C:
		_ = p.Kill()
	}
}

// cmd is the worker's command, not started.
func (r *Runner) cmd() *exec.Cmd {
	cmd := exec.Command(r.Path, r.Args...)
	if r.Name != "" {
		cmd.Args[0] = r.Name
	}
	cmd.Env = r.Env
	if cmd.Env == nil {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
	}
	return cmd
}

// start starts the worker with the request written to its stdin.
func (r *Runner) start(req Request) (*exec.Cmd, io.WriteCloser, *os.File, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	defer wr.Close() // the worker's copy stays open in the worker
	cmd := r.cmd()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{wr} // descriptor 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		rd.Close()
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		rd.Close()
		return nil, nil, nil, err
	}
	b, _ := json.Marshal(req)
	// A worker that dies at once makes this fail; its end is reported
	// from the event stream like any other.
	_, _ = stdin.Write(append(b, '\n'))
	return cmd, stdin, rd, nil
}

// read passes events to h until the outcome or the end of the stream.
func read(events io.Reader, answers io.Writer, h Handler) (*Final, error) {
	dec := json.NewDecoder(events)
	enc := json.NewEncoder(answers)
	for {
		var e Event
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("worker events: %w", err)
		}
		switch {
		case e.Done != nil:
			return e.Done, nil
		case e.Progress != nil:
			if h.Progress != nil {
				h.Progress(*e.Progress)
			}
		case e.BeforeWrite != "":
			var err error
			if h.BeforeWrite != nil {
				err = h.BeforeWrite(e.BeforeWrite)
			}
			_ = enc.Encode(Answer{Error: EncodeError(err)}) // a dead worker is seen on events
		}
	}
}

// exitText says how a worker ended.
func exitText(err error) string {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err == nil {
			return "exit status 0"
		}
		return err.Error()
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return ee.Error()
}

// Pin returns a Runner that starts the executable at path as it is now,
// whatever later replaces the file: it holds the file open and starts
// /proc/self/fd/N, so a package upgrade that installs a new upgrade-worker
// beside a running daemon cannot pair the daemon with a worker of another
// version (the protocol is not versioned). The file stays open for the
// life of the process.
func Pin(path string) (*Runner, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0111 == 0 {
		f.Close()
		return nil, fmt.Errorf("%s: not an executable file: %w", path, errdefs.ErrNotFound)
	}
	// exec runs an ELF file through a close-on-exec descriptor: the
	// kernel opens it before it closes the descriptors.
	pinned = append(pinned, f)
	return &Runner{Path: fmt.Sprintf("/proc/self/fd/%d", f.Fd()), Name: path}, nil
}

// pinned keeps Pin's files open (and out of the collector's reach).
var pinned []*os.File
