// Package probe is the confinement check shared by confine's host test and
// its VM guest: a root with a hard-link clone, the operations an upgrade
// does and those it must not, and what each should give under the
// daemon's confinement.
package probe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/confine"
	"laptop.org/upgrade/layout"
)

// Op is one file operation, run under confinement on a root laid out by
// MakeRoot. Paths are relative to the root's parent, so that "outside"
// is reachable.
type Op struct {
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

// Ops: what an upgrade does is allowed, the rest refused. Landlock says
// EACCES for a denied access, and EXDEV for a link or rename that it
// refuses as a reparenting (the file would gain rights, or leave a
// hierarchy without "refer").
func Ops(abi int) []Op {
	truncWant := syscall.EACCES
	if abi < 3 { // LANDLOCK_ACCESS_FS_TRUNCATE came with ABI 3
		truncWant = 0
	}
	return []Op{
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

// MakeRoot lays out, under d, a root whose running slot is a (current ->
// a, etc -> current/etc) with b a hard-link clone of it, the state and
// security directories, and a directory outside the root.
func MakeRoot(d string) error {
	for _, dir := range []string{"root/a/usr/bin", "root/a/etc", "root/b/usr/bin", "root/var/lib/upgrade/scratch", "root/var/lib/securityd", "outside"} {
		if err := os.MkdirAll(p(d, dir), 0755); err != nil {
			return err
		}
	}
	for _, f := range []string{"root/a/usr/bin/tool", "root/a/usr/bin/other", "root/a/etc/passwd", "root/var/lib/securityd/bootptr", "outside/file"} {
		if err := os.WriteFile(p(d, f), []byte("x\n"), 0644); err != nil {
			return err
		}
	}
	if err := os.Link(p(d, "root/a/usr/bin/tool"), p(d, "root/b/usr/bin/tool")); err != nil {
		return err
	}
	for target, link := range map[string]string{"a": "root/current", "current/etc": "root/etc"} {
		if err := os.Symlink(target, p(d, link)); err != nil {
			return err
		}
	}
	return nil
}

// Outcome maps an operation's name to "ok" or its errno's name.
type Outcome map[string]string

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return unix.ErrnoName(e)
}

// Want is what Ops should give under confinement on a kernel with abi.
func Want(abi int) Outcome {
	w := Outcome{}
	for _, o := range Ops(abi) {
		w[o.name] = errnoName(o.want)
	}
	return w
}

// Run confines the calling process as the daemon is, on the root d/root
// laid out by MakeRoot, and runs Ops. Confinement cannot be lifted: run
// it in a process of its own.
func Run(d string, abi int) (Outcome, error) {
	if err := Confine(d); err != nil {
		return nil, err
	}
	return RunOps(d, abi), nil
}

// Confine confines the calling process as the daemon is, on the root
// d/root laid out by MakeRoot.
func Confine(d string) error {
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
	return nil
}

// RunOps runs Ops and reports what each gave.
func RunOps(d string, abi int) Outcome {
	got := Outcome{}
	for _, o := range Ops(abi) {
		var e syscall.Errno
		if err := o.do(d); err != nil && !errors.As(err, &e) {
			e = syscall.EINVAL // not an errno: shows in a diff
		}
		got[o.name] = errnoName(e)
	}
	return got
}
