package fetch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"laptop.org/upgrade/digest"
)

// The kill -9 test needs a process that dies mid-download with no chance to
// clean up. The test binary re-executes itself with these variables set and
// runs killChild instead of the tests.
const (
	envChild  = "FETCH_TEST_KILL_CHILD" // mirror URL
	envDir    = "FETCH_TEST_KILL_DIR"
	envBlob   = "FETCH_TEST_KILL_BLOB" // path
	envSize   = "FETCH_TEST_KILL_SIZE"
	envDigest = "FETCH_TEST_KILL_DIGEST"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		killChild()
	}
	os.Exit(m.Run())
}

// killChild downloads one blob and waits to be killed. Exit 0 would mean the
// parent failed to kill it mid-download; the parent treats that as failure.
func killChild() {
	size, _ := strconv.ParseInt(os.Getenv(envSize), 10, 64)
	d, err := digest.Parse(os.Getenv(envDigest))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	f, err := New(Options{Mirrors: []string{os.Getenv(envChild)}, Proxy: noProxy})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	err = f.Fetch(context.Background(), os.Getenv(envDir), []Blob{{Path: os.Getenv(envBlob), Size: size, SHA256: d}})
	fmt.Fprintln(os.Stderr, "child finished:", err)
	os.Exit(3)
}

// TestResumeAfterKill9 kills a downloading process with SIGKILL once its
// partial passes 1 MiB, then resumes in this process: the offset must be
// recovered by rehashing the partial, the server must see a Range request
// from exactly there, and the final file must verify.
func TestResumeAfterKill9(t *testing.T) {
	const size = 32 * mib
	s := newServer(t)
	b := addBlob(t, content(32, size), s.dir)
	s.delay.Store(int64(10 * time.Millisecond)) // ~6 MB/s: seconds to finish, the kill lands early
	dir := t.TempDir()
	partial := filepath.Join(dir, b.SHA256.String()+".partial")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envChild+"="+s.URL, envDir+"="+dir, envBlob+"="+b.Path,
		envSize+"="+itoa(b.Size), envDigest+"="+b.SHA256.String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx := testCtx(t)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-exited:
			t.Fatalf("child exited before the kill: %v", err)
		case <-ctx.Done():
			cmd.Process.Kill()
			t.Fatal("partial never grew past 1 MiB")
		case <-tick.C:
			if fi, err := os.Stat(partial); err == nil && fi.Size() > mib {
				break wait
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	fi, err := os.Stat(partial)
	if err != nil || fi.Size() >= size {
		t.Fatalf("partial after kill: %v %v", fi, err)
	}
	off := fi.Size()

	s.delay.Store(0)
	f := newFetcher(t, Options{Mirrors: []string{s.URL}})
	if err := f.Fetch(ctx, dir, []Blob{b}); err != nil {
		t.Fatal(err)
	}
	checkFinal(t, dir, b)
	want := []string{"", "bytes=" + itoa(off) + "-"}
	if diff := cmp.Diff(want, rangeRequests(s, b.Path)); diff != "" {
		t.Errorf("Range headers (-want +got):\n%s", diff)
	}
	if got := f.BytesReceived(); got != size-off {
		t.Errorf("resumed process received %d bytes, want %d", got, size-off)
	}
	if got := s.sent.Load(); got >= 2*size {
		t.Errorf("server sent %d bytes for a %d-byte blob", got, size)
	}
}
