package confine_test

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/confine"
	"laptop.org/upgrade/confine/internal/probe"
	"laptop.org/upgrade/layout"
)

// TestCheckMounts: a slot or the state directory on a bind mount of its
// own (what ReadWritePaths= does) is reported; one mount is fine.
func TestCheckMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace)")
	}
	for _, tc := range []struct {
		name    string
		bind    string // under root/, bind-mounted onto itself
		wantErr bool
	}{
		{"one mount", "", false},
		{"slot b on its own mount", "b", true},
		{"state directory on its own mount", "var/lib/upgrade", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			if err := probe.MakeRoot(d); err != nil {
				t.Fatal(err)
			}
			r := layout.Root{Dir: d + "/root"}
			errc := make(chan error, 1)
			go func() {
				// The namespace is this thread's alone; the goroutine ends
				// locked, so the thread exits with it.
				runtime.LockOSThread()
				if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
					errc <- err
					return
				}
				if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
					errc <- err
					return
				}
				if tc.bind != "" {
					p := d + "/root/" + tc.bind
					if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
						errc <- err
						return
					}
				}
				errc <- confine.CheckMounts(r)
			}()
			err := <-errc
			if (err != nil) != tc.wantErr {
				t.Errorf("CheckMounts: %v, want an error: %v", err, tc.wantErr)
			}
			t.Log(err)
		})
	}
}
