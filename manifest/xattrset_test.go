package manifest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestTrackedOnFd: one flistxattr names the tracked attributes a file has,
// ignores untracked ones, and a list too long for the buffer makes every
// name worth asking; ReadXattrsFd, built on it, reads what ReadXattrs does.
func TestTrackedOnFd(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }
	for _, n := range []string{"plain", "acl", "cap", "user"} {
		if err := os.WriteFile(path(n), []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(path("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-m", "u:4242:rw", path("acl")}, {"-d", "-m", "u:4244:rx", path("dir")}} {
		if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
			t.Fatalf("setfacl %v: %v %s (the acl package: make deps)", args, err, out)
		}
	}
	// VFS_CAP_REVISION_2 with the effective flag, permitting CAP_NET_RAW.
	capV2 := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Setxattr(path("cap"), XattrCapability, capV2, 0); err != nil {
		t.Fatalf("set %s (the tests run as root): %v", XattrCapability, err)
	}
	userOK := unix.Setxattr(path("user"), "user.note", []byte("hello"), 0) == nil
	if !userOK {
		t.Log("no user.* xattrs on this filesystem: the untracked case is a plain file")
	}
	const acc, def, capb = 1 << 1, 1 << 2, 1 << 0
	for _, tc := range []struct {
		name string
		buf  int
		want XattrSet
	}{
		{"plain", 256, 0},
		{"plain", 1, 0},
		{"acl", 256, acc},
		{"dir", 256, def},
		{"cap", 256, capb},
		{"user", 256, 0},
		{"acl", 4, AllTracked},
	} {
		if tc.name == "user" && !userOK {
			continue
		}
		f, err := os.Open(path(tc.name))
		if err != nil {
			t.Fatal(err)
		}
		fd := int(f.Fd())
		if got := TrackedOnFd(fd, make([]byte, tc.buf)); got != tc.want {
			t.Errorf("%s with a %d-byte buffer: %03b, want %03b", tc.name, tc.buf, got, tc.want)
		}
		byFd, err := ReadXattrsFd(fd)
		if err != nil {
			t.Fatal(err)
		}
		byPath, err := ReadXattrs(path(tc.name))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(byPath, byFd); diff != "" {
			t.Errorf("%s: ReadXattrsFd differs from ReadXattrs (-path +fd):\n%s", tc.name, diff)
		}
		f.Close()
	}
	if AllTracked.Has("user.note") || !AllTracked.Has(XattrACLDefault) || XattrSet(acc).Has(XattrCapability) {
		t.Errorf("Has: untracked names are never in a set, tracked ones only when their bit is")
	}
}
