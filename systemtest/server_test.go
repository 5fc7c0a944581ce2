package systemtest

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// serve runs the real publisher's server on [::1]:port for repo (a folder
// of build/image) until the test ends. The guest reaches it as
// http://[fec0::2]:port/ through qemu's IPv6-only user network.
func (e env) serve(t *testing.T, repo string) {
	t.Helper()
	addr := net.JoinHostPort("::1", e.port)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s is already in use: the image's upgraded.conf names this port (make image IMAGE_PORT=...)", addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "upgrade-publish"), "serve", "--repo", filepath.Join(e.image, repo), "--listen", addr)
	// A test binary that is killed takes the server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	t.Cleanup(func() { cancel(); cmd.Wait() })
	url := "http://" + addr + "/timestamp.json"
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the repository server on %s did not answer: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
