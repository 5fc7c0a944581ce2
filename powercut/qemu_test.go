package powercut

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// bootTimeout bounds every qemu run: a boot plus a whole upgrade and the
// verification of both slots under TCG on a loaded 2-core machine takes well
// under a minute; a hung guest must not hang the suite.
const bootTimeout = 4 * time.Minute

// boot is one running qemu. Its console is collected as it arrives, so that
// the host can time the cut from a line the guest prints.
type boot struct {
	cmd    *exec.Cmd
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time
	done   chan struct{} // closed when qemu has exited
	mu     sync.Mutex
	out    bytes.Buffer
}

func (b *boot) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

// console returns everything qemu printed so far.
func (b *boot) console() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

// start boots img (opened with cache=none, so the guest's flushes reach the
// host file and nothing is cached in qemu) with the media disk read-only as
// the second drive.
func (w *world) start(t *testing.T, img, args string) *boot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	b := &boot{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	b.cmd = exec.CommandContext(ctx, "qemu-system-x86_64", "-nographic", "-no-reboot", "-m", "512", "-nic", "none",
		"-kernel", w.kernel, "-initrd", w.initrd,
		"-drive", "file="+img+",format=raw,if=virtio,cache=none",
		"-drive", "file="+w.mediaImg+",format=raw,if=virtio,readonly=on",
		"-append", "console=ttyS0 panic=-1 quiet root=LABEL="+rootLabel+" rootwait "+args)
	b.cmd.Stdout, b.cmd.Stderr = b, b
	b.start = time.Now()
	if err := b.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		b.cmd.Wait()
		close(b.done)
	}()
	// On every path (a failed assert included) qemu is gone before the
	// test's temp dir is removed.
	t.Cleanup(b.kill)
	return b
}

// waitFor polls the console for line until qemu exits or the boot times
// out; it reports whether the line appeared.
func (b *boot) waitFor(line string) bool {
	for {
		if strings.Contains(b.console(), line) {
			return true
		}
		select {
		case <-b.done:
			return strings.Contains(b.console(), line)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill pulls the plug: SIGKILL, no flush, no shutdown.
func (b *boot) kill() {
	b.cmd.Process.Kill()
	<-b.done
	b.cancel()
}

// wait lets the guest finish (it powers off) and returns the console. A
// boot that hits the hard timeout fails the test.
func (b *boot) wait(t *testing.T) string {
	t.Helper()
	<-b.done
	timedOut := b.ctx.Err() != nil
	b.cancel()
	out := b.console()
	if timedOut {
		t.Fatalf("qemu did not power off within %v\n%s", bootTimeout, consoleLines(out))
	}
	return out
}

// consoleLines keeps the lines that matter from a console full of escapes.
func consoleLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		for _, mark := range []string{"upgrade-init:", "powercut:", "upgraded:", "slot ", "next boot:", "Kernel panic", "EXT4-fs error"} {
			if i := strings.Index(l, mark); i >= 0 {
				keep = append(keep, strings.TrimSpace(l[i:]))
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}

// vmEnv returns the kernel and initrd from the environment `make powercut`
// sets; without UPGRADE_VM the test skips (plain go test ./...), with it a
// missing piece is a failure.
func vmEnv(t *testing.T) (kernel, initrd string) {
	t.Helper()
	if os.Getenv("UPGRADE_VM") == "" {
		t.Skip("VM test: run `make powercut` (needs the kernel in build/kernel, the initrd and qemu)")
	}
	kernel, initrd = os.Getenv("UPGRADE_VM_KERNEL"), os.Getenv("UPGRADE_VM_INITRD")
	for _, p := range []string{kernel, initrd} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("UPGRADE_VM set but %v (make powercut builds both)", err)
		}
	}
	for _, tool := range []string{"qemu-system-x86_64", "mkfs.ext4", "e2fsck"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (make deps installs it)", tool, err)
		}
	}
	return kernel, initrd
}
