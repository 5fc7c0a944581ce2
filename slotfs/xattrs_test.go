package slotfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/manifest"
)

// TestSetXattrs: the tracked xattrs end exactly as asked, whichever the
// file had (SetXattrs removes only those its one list shows), and an
// untracked one is left alone.
func TestSetXattrs(t *testing.T) {
	capV2 := manifest.Xattr{Name: manifest.XattrCapability, Value: []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}
	for _, tc := range []struct {
		name      string
		cap, acl  bool // what the file has before
		set, want []string
	}{
		{"none to none", false, false, nil, nil},
		{"both removed", true, true, nil, nil},
		{"cap kept, acl removed", true, true, []string{manifest.XattrCapability}, []string{manifest.XattrCapability}},
		{"cap added", false, false, []string{manifest.XattrCapability}, []string{manifest.XattrCapability}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			must(t, os.WriteFile(p, []byte("x"), 0o755))
			if tc.acl {
				if out, err := exec.Command("setfacl", "-m", "u:4242:rw", p).CombinedOutput(); err != nil {
					t.Fatalf("setfacl: %v %s (the acl package: make deps)", err, out)
				}
			}
			if tc.cap {
				must(t, unix.Setxattr(p, capV2.Name, capV2.Value, 0))
			}
			userOK := unix.Setxattr(p, "user.note", []byte("kept"), 0) == nil
			var xs []manifest.Xattr
			for range tc.set {
				xs = append(xs, capV2)
			}
			f, err := os.Open(p)
			must(t, err)
			defer f.Close()
			must(t, SetXattrs(int(f.Fd()), xs))
			got, err := manifest.ReadXattrs(p)
			must(t, err)
			var names []string
			for _, x := range got {
				names = append(names, x.Name)
			}
			if diff := cmp.Diff(tc.want, names); diff != "" {
				t.Errorf("tracked xattrs after (-want +got):\n%s", diff)
			}
			if userOK {
				if _, err := unix.Getxattr(p, "user.note", make([]byte, 16)); err != nil {
					t.Errorf("the untracked user.note went: %v", err)
				}
			}
		})
	}
}
