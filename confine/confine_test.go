package confine_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/confine"
	"laptop.org/upgrade/layout"
)

// helperEnv makes the test binary the confined helper: Landlock cannot be
// lifted, so the operations run in a child process of their own.
const helperEnv = "CONFINE_TEST_HELPER"

// op is one file operation, run under confinement on a root laid out by
// makeRoot. Paths are relative to the root's parent, so that "outside"
// is reachable.
type op struct {
	name string
	do   func(d string) error
	want syscall.Errno // 0: allowed
}

func p(d string, rel string) string { return filepath.Join(d, rel) }

func writeFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		f.Close()
	}
	return err
}

func create(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0644)
	if err == nil {
		f.Close()
	}
	return err
}

// ops: what an upgrade does is allowed, the rest refused. Landlock says
// EACCES for a denied access, and EXDEV for a link or rename that it
// refuses as a reparenting (the file would gain rights, or leave a
// hierarchy without "refer").
func ops(abi int) []op {
	truncWant := syscall.EACCES
	if abi < 3 { // LANDLOCK_ACCESS_FS_TRUNCATE came with ABI 3
		truncWant = 0
	}
	return []op{
		// The running slot: nothing.
		{"active: open a file for writing", func(d string) error { return writeFile(p(d, "root/a/usr/bin/tool")) }, syscall.EACCES},
		{"active: create a file", func(d string) error { return create(p(d, "root/a/usr/bin/new")) }, syscall.EACCES},
		{"active: mkdir", func(d string) error { return os.Mkdir(p(d, "root/a/newdir"), 0755) }, syscall.EACCES},
		{"active: symlink", func(d string) error { return os.Symlink("x", p(d, "root/a/usr/bin/sym")) }, syscall.EACCES},
		{"active: unlink", func(d string) error { return os.Remove(p(d, "root/a/usr/bin/other")) }, syscall.EACCES},
		{"active: rename within a directory", func(d string) error {
			return os.Rename(p(d, "root/a/usr/bin/other"), p(d, "root/a/usr/bin/other2"))
		}, syscall.EACCES},
		{"active: link within", func(d string) error { return os.Link(p(d, "root/a/usr/bin/tool"), p(d, "root/a/etc/tool")) }, syscall.EACCES},
		{"active: link from the inactive slot into it", func(d string) error {
			return os.Link(p(d, "root/b/usr/bin/tool"), p(d, "root/a/usr/bin/tool3"))
		}, syscall.EACCES},
		{"active: truncate by path", func(d string) error { return os.Truncate(p(d, "root/a/usr/bin/other"), 0) }, truncWant},
		{"active /etc through current: create", func(d string) error { return create(p(d, "root/etc/new.conf")) }, syscall.EACCES},
		// The inactive slot: names, never contents (its files share inodes
		// with the running slot).
		{"inactive: open a shared file for writing", func(d string) error { return writeFile(p(d, "root/b/usr/bin/tool")) }, syscall.EACCES},
		{"inactive: create a file with open", func(d string) error { return create(p(d, "root/b/usr/bin/new")) }, syscall.EACCES},
		{"inactive: truncate a shared file", func(d string) error { return os.Truncate(p(d, "root/b/usr/bin/tool"), 0) }, truncWant},
		{"inactive: link from the active slot (the clone)", func(d string) error {
			return os.Link(p(d, "root/a/usr/bin/other"), p(d, "root/b/usr/bin/other"))
		}, 0},
		{"inactive: mkdir", func(d string) error { return os.Mkdir(p(d, "root/b/newdir"), 0755) }, 0},
		{"inactive: symlink", func(d string) error { return os.Symlink("tool", p(d, "root/b/usr/bin/sym")) }, 0},
		{"inactive: rename across its directories", func(d string) error {
			return os.Rename(p(d, "root/b/usr/bin/sym"), p(d, "root/b/newdir/sym"))
		}, 0},
		{"inactive: unlink", func(d string) error { return os.Remove(p(d, "root/b/newdir/sym")) }, 0},
		{"inactive: rmdir", func(d string) error { return os.Remove(p(d, "root/b/newdir")) }, 0},
		{"inactive: mknod a fifo", func(d string) error { return unix.Mknod(p(d, "root/b/fifo"), unix.S_IFIFO|0600, 0) }, 0},
		{"inactive: move a shared file out to the state directory", func(d string) error {
			return os.Rename(p(d, "root/b/usr/bin/tool"), p(d, "root/var/lib/upgrade/tool"))
		}, syscall.EXDEV},
		// The state directory: everything; and its files may move into
		// the inactive slot (the scratch, slotfs.SetScratch).
		{"state: create and write", func(d string) error { return create(p(d, "root/var/lib/upgrade/scratch/new")) }, 0},
		{"state: truncate", func(d string) error { return os.Truncate(p(d, "root/var/lib/upgrade/scratch/new"), 0) }, 0},
		{"state: rename a new file into the inactive slot", func(d string) error {
			return os.Rename(p(d, "root/var/lib/upgrade/scratch/new"), p(d, "root/b/usr/bin/new"))
		}, 0},
		{"state: link a running slot's file in (it would gain write access)", func(d string) error {
			return os.Link(p(d, "root/a/usr/bin/tool"), p(d, "root/var/lib/upgrade/tool"))
		}, syscall.EXDEV},
		// Everything else on the root and outside it.
		{"security service's directory: write the boot pointer", func(d string) error { return writeFile(p(d, "root/var/lib/securityd/bootptr")) }, syscall.EACCES},
		{"security service's directory: create", func(d string) error { return create(p(d, "root/var/lib/securityd/new")) }, syscall.EACCES},
		{"root: replace the current symlink", func(d string) error { return os.Rename(p(d, "root/current"), p(d, "root/current.old")) }, syscall.EACCES},
		{"root: create at the top", func(d string) error { return create(p(d, "root/new")) }, syscall.EACCES},
		{"persistent /var: create", func(d string) error { return create(p(d, "root/var/new")) }, syscall.EACCES},
		{"outside the root: write", func(d string) error { return writeFile(p(d, "outside/file")) }, syscall.EACCES},
		{"outside the root: create", func(d string) error { return create(p(d, "outside/new")) }, syscall.EACCES},
	}
}

// makeRoot lays out, under d, a root whose running slot is a (current ->
// a, etc -> current/etc) with b a hard-link clone of it, the state and
// security directories, and a directory outside the root.
func makeRoot(t *testing.T, d string) {
	t.Helper()
	for _, dir := range []string{"root/a/usr/bin", "root/a/etc", "root/b/usr/bin", "root/var/lib/upgrade/scratch", "root/var/lib/securityd", "outside"} {
		if err := os.MkdirAll(p(d, dir), 0755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"root/a/usr/bin/tool", "root/a/usr/bin/other", "root/a/etc/passwd", "root/var/lib/securityd/bootptr", "outside/file"} {
		if err := os.WriteFile(p(d, f), []byte("x\n"), 0644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(p(d, "root/a/usr/bin/tool"), p(d, "root/b/usr/bin/tool")); err != nil {
		t.Fatal(err)
	}
	for target, link := range map[string]string{"a": "root/current", "current/etc": "root/etc"} {
		if err := os.Symlink(target, p(d, link)); err != nil {
			t.Fatal(err)
		}
	}
}

type outcome map[string]string

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return unix.ErrnoName(e)
}

// TestConfinement: in a confined child process, an upgrade's operations
// succeed and every write to the running slot, to the rest of the root and
// outside it fails. Runs on any kernel with Landlock ABI 2 or later (the
// Debian 6.1 cloud kernel has 2; see also TestGuestConfinement in
// powercut for a run there); fails, not skips, without.
func TestConfinement(t *testing.T) {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < confine.MinABI {
		t.Fatalf("this kernel has no Landlock ABI >= %d (%d, %v): the confinement cannot be tested here", confine.MinABI, abi, err)
	}
	d := t.TempDir()
	makeRoot(t, d)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+d)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var got outcome
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("helper output: %v\n%s", err, out)
	}
	want := outcome{}
	for _, o := range ops(abi) {
		want[o.name] = errnoName(o.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operations under confinement, Landlock ABI %d (-want +got):\n%s", abi, diff)
	}
	// The running slot is as it was.
	if b, err := os.ReadFile(p(d, "root/a/usr/bin/tool")); err != nil || string(b) != "x\n" {
		t.Errorf("active slot's file: %q, %v", b, err)
	}
}

// TestMain runs the confined child of TestConfinement when asked to.
func TestMain(m *testing.M) {
	if d := os.Getenv(helperEnv); d != "" {
		if err := helper(d); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper confines itself as the daemon does on the root under d, runs ops
// and prints their outcomes as JSON.
func helper(d string) error {
	r, err := layout.New(p(d, "root"))
	if err != nil {
		return err
	}
	rules, err := confine.ForDaemon(r)
	if err != nil {
		return err
	}
	res, err := confine.Apply(rules, confine.Required)
	if err != nil || !res.Enforced {
		return fmt.Errorf("%v: %v", res, err)
	}
	abi, _ := ll.LandlockGetABIVersion()
	got := outcome{}
	for _, o := range ops(abi) {
		var e syscall.Errno
		if err := o.do(d); err != nil && !errors.As(err, &e) {
			e = syscall.EINVAL // not an errno: shows in the diff
		}
		got[o.name] = errnoName(e)
	}
	return json.NewEncoder(os.Stdout).Encode(got)
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"off", "auto", "required"} {
		if m, err := confine.ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := confine.ParseMode("yes"); err == nil {
		t.Error("ParseMode(yes): no error")
	}
}
