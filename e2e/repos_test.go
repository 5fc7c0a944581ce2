package e2e

import (
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/repo/sigkey"
)

// pubRepo is a repository published by the real upgrade-publish, with the
// trusted keys and a root provisioned from it at version 1.
//
// Publishing and provisioning run as the (non-race) binaries, once per
// run, and each test copies the provisioned root (cp -a keeps modes,
// owners, xattrs, hard links and the deployed mtimes): under the race
// detector the same work in-process took over a minute for the big
// repository and six seconds per root on a loaded machine.
type pubRepo struct {
	Dir      string       // the repository, served as is
	KeysDir  string       // trusted *.pub, as both daemons read them
	Keys     repo.Keyring // the same keys
	Trees    []string     // source tree of version i+1
	template string       // a root provisioned at version 1, to copy
}

// Shared repositories live in sharedDir, which TestMain removes.
var (
	sharedDir              string
	smallOnce, bigOnce     sync.Once
	sharedSmall, sharedBig *pubRepo
)

// bigRepo sizes: enough files that cloning takes a moment, and enough new
// incompressible bytes that downloading, applying and verifying do too.
const (
	smallFiles = 4000    // identical tiny files in both versions (clone work)
	bigFiles   = 4       // new random files in version 2
	bigSize    = 6 << 20 // bytes each
)

// smallRepo is versions 1 and 2 of the sample tree (internal/testtree);
// an upgrade downloads about 22 kB.
func smallRepo(t *testing.T) *pubRepo {
	t.Helper()
	smallOnce.Do(func() { sharedSmall = publishRepo(t, "small", nil) })
	if sharedSmall == nil {
		t.Fatal("the shared small repository failed to build in an earlier test")
	}
	return sharedSmall
}

// bigRepo is the sample tree plus many small files in both versions, and
// bigFiles×bigSize random bytes new in version 2, which neither compress
// nor have a delta base.
func bigRepo(t *testing.T) *pubRepo {
	t.Helper()
	bigOnce.Do(func() {
		sharedBig = publishRepo(t, "big", func(tree string, v int) {
			for i := 0; i < smallFiles; i++ {
				writeFile(t, filepath.Join(tree, "usr/share/many", fmt.Sprintf("d%02d/f%04d", i%40, i)), []byte("x\n"))
			}
			if v == 2 {
				r := rand.New(rand.NewSource(42))
				for i := 0; i < bigFiles; i++ {
					b := make([]byte, bigSize)
					r.Read(b)
					writeFile(t, filepath.Join(tree, "usr/lib/big", fmt.Sprintf("blob%d", i)), b)
				}
			}
		})
	})
	if sharedBig == nil {
		t.Fatal("the shared big repository failed to build in an earlier test")
	}
	return sharedBig
}

// publishRepo builds versions 1 and 2 of the sample tree (plus what extra
// adds), publishes them with upgrade-publish and provisions the template
// root with it.
func publishRepo(t *testing.T, name string, extra func(tree string, v int)) *pubRepo {
	t.Helper()
	return publishRepoWith(t, name, extra, nil)
}

// publishRepoWith is publishRepo with more flags for `add` of version v.
func publishRepoWith(t *testing.T, name string, extra func(tree string, v int), addFlags func(v int) []string) *pubRepo {
	t.Helper()
	base := filepath.Join(sharedDir, name)
	// Each call publishes anew: a run of -count=N or a second test with the
	// same name would otherwise find the first one's key and repository.
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	rp := &pubRepo{Dir: filepath.Join(base, "repo"), KeysDir: filepath.Join(base, "trusted"), template: filepath.Join(base, "template", "root")}
	for _, d := range []string{rp.KeysDir, filepath.Join(base, "secret"), filepath.Dir(rp.template)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin("upgrade-publish"), args...).CombinedOutput(); err != nil {
			t.Fatalf("upgrade-publish %v: %v\n%s", args, err, out)
		}
	}
	publish("keygen", "--out", filepath.Join(base, "secret"), "--name", "test")
	pub, err := os.ReadFile(filepath.Join(base, "secret", "test.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rp.KeysDir, "test.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	if rp.Keys, err = sigkey.LoadKeyring(rp.KeysDir); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 2; v++ {
		tree := filepath.Join(base, "tree", fmt.Sprint(v))
		if err := testtree.Build(tree, v); err != nil {
			t.Fatal(err)
		}
		if extra != nil {
			extra(tree, v)
		}
		rp.Trees = append(rp.Trees, tree)
		args := []string{"add", "--repo", rp.Dir, "--key", filepath.Join(base, "secret", "test.key"), "--channel", testrepo.Channel}
		if addFlags != nil {
			args = append(args, addFlags(v)...)
		}
		publish(append(args, tree)...)
	}
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	publish("provision", "--root", rp.template, "--mirror", url, "--keys", rp.KeysDir, "--channel", testrepo.Channel, "--version", "1")
	return rp
}

// provisionInto copies the template root to dir/root: a freshly
// provisioned machine at version 1.
func (rp *pubRepo) provisionInto(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "root")
	if out, err := exec.Command("cp", "-a", rp.template, root).CombinedOutput(); err != nil {
		t.Fatalf("copy the provisioned root: %v\n%s", err, out)
	}
	return root
}

// writeFile writes a deployed-looking file: mode 0644, mtime 1 s.
func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{{Sec: 1}, {Sec: 1}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}
