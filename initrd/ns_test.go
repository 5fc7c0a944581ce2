package initrd

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/layout"
)

// The namespace test runs the real steps — kernel mounts, cmdline, finding
// the root by LABEL through sysfs and devtmpfs, mounting it, the pointer and
// the current link, moving the mounts — against an ext4 image on a loop
// device, inside a private mount namespace so that nothing leaks to the
// host. Only module loading and switch_root/exec are left out (HostSafe).
// The test re-executes itself under unshare(1); the child is recognised by
// nsChildEnv.
const nsChildEnv = "UPGRADE_INITRD_NS_CHILD"

func TestNamespace(t *testing.T) {
	if os.Getenv(nsChildEnv) != "" {
		nsChild(t)
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root: mount namespaces, loop devices")
	}
	for _, tool := range []string{"unshare", "losetup", "mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (make deps): %v", tool, err)
		}
	}
	label := fmt.Sprintf("upg-ns-%d", os.Getpid()%100000)
	img := filepath.Join(t.TempDir(), "disk.img")
	disk{label: label, slots: []layout.Slot{"a", "b"}, current: "a",
		ptr: &bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 1, Seq: 3}}.build(t, img)
	loop := strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })

	root := "LABEL=" + label + " rootdelay=3"
	boot := func(cmdline, wantSlot, wantErr string) {
		t.Helper()
		cmd := exec.Command("unshare", "-m", "--propagation", "private", os.Args[0], "-test.run=^TestNamespace$", "-test.v")
		cmd.Env = append(os.Environ(), nsChildEnv+"=1", "NS_PREFIX="+t.TempDir(), "NS_CMDLINE="+cmdline,
			"NS_WANT_SLOT="+wantSlot, "NS_WANT_ERR="+wantErr)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "\nPASS") {
			t.Fatalf("child %q: %v\n%s", cmdline, err, out)
		}
		t.Logf("child %q:\n%s", cmdline, grepLines(string(out), "upgrade-init:"))
	}
	wantPtr := func(want bootptr.Pointer) {
		t.Helper()
		got, err := imagePointer(t, img)
		if err != nil || got != want {
			t.Fatalf("pointer on disk = %+v, %v; want %+v", got, err, want)
		}
	}
	wantCurrent := func(want string) {
		t.Helper()
		if id := identity(t, img, "/current"); !strings.Contains(id, `Fast link dest: "`+want+`"`) {
			t.Fatalf("current on disk: %s; want -> %s", id, want)
		}
	}

	// Boot 0: the start after /init kexecd slot b's kernel (the mark on the
	// command line): b boots and the try, paid before the kexec, is not
	// paid again; nothing is written.
	ptrID0 := identity(t, img, "/var/lib/securityd/bootptr")
	boot("root="+root+" ro "+KexecParam+"=b:6.1.0-1-test", "b", "")
	wantPtr(bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 1, Seq: 3})
	if got := identity(t, img, "/var/lib/securityd/bootptr"); got != ptrID0 {
		t.Errorf("the start after a kexec rewrote the pointer")
	}
	// Boot 1: trial b with its last try, "ro": the root is mounted
	// read-only, made writable for the try and the swing, then read-only
	// again (the child checks). Boots b, writes tries=0, swings current.
	boot("root="+root+" ro", "b", "")
	wantPtr(bootptr.Pointer{Next: "b", Good: "a", Trial: true, Tries: 0, Seq: 4})
	wantCurrent("b")
	// Boot 2: never marked good: falls back to a and reports b.
	boot("root="+root, "a", "")
	wantPtr(bootptr.Pointer{Next: "a", Good: "a", Failed: "b", Seq: 5})
	wantCurrent("a")
	// Boot 3: normal: nothing on the disk changes.
	ptrID, curID := identity(t, img, "/var/lib/securityd/bootptr"), identity(t, img, "/current")
	mounts := mountCount(t, img)
	boot("root="+root+" ro", "a", "")
	if got := mountCount(t, img); got != mounts {
		t.Errorf("normal ro boot mounted the root read-write (mount count %s -> %s)", mounts, got)
	}
	if got := identity(t, img, "/var/lib/securityd/bootptr"); got != ptrID {
		t.Errorf("normal boot rewrote the pointer:\n%s\nwas\n%s", got, ptrID)
	}
	if got := identity(t, img, "/current"); got != curID {
		t.Errorf("normal boot replaced current:\n%s\nwas\n%s", got, curID)
	}
	// Boot 4: override b: this boot only, so the pointer stays; current follows the boot.
	boot("upgrade.slot=b root="+root, "b", "")
	wantPtr(bootptr.Pointer{Next: "a", Good: "a", Failed: "b", Seq: 5})
	wantCurrent("b")
	// Boot 5: missing root device: the find-root step fails, bounded.
	boot("root=LABEL=no-such-disk rootdelay=1", "", "find-root")
}

// nsChild runs inside the private mount namespace.
func nsChild(t *testing.T) {
	prefix := os.Getenv("NS_PREFIX")
	var console strings.Builder
	s := &State{Prefix: prefix, Console: &console, Start: time.Now(),
		ReadCmdline: func() (string, error) { return os.Getenv("NS_CMDLINE"), nil }}
	err := Run(s, HostSafe())
	if err == nil && s.Cmdline.Timing {
		s.report(s.since()) // what execInit would print (TestNativeBench)
	}
	fmt.Print(console.String())
	defer unmountAll(t, prefix)
	if want := os.Getenv("NS_WANT_ERR"); want != "" {
		var se *StepError
		if !errors.As(err, &se) || se.Step != want {
			t.Fatalf("Run = %v; want a failure in step %s", err, want)
		}
		fmt.Printf("upgrade-init: FATAL: %v\n", err)
		if s.DeviceWait < time.Second || s.DeviceWait > 3*time.Second {
			t.Errorf("device wait %v, want about rootdelay=1s", s.DeviceWait)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	want := os.Getenv("NS_WANT_SLOT")
	if string(s.Decision.Boot) != want {
		t.Errorf("booted %q, want %q (%s)", s.Decision.Boot, want, s.Decision.Reason)
	}
	if cur, _ := os.Readlink(filepath.Join(s.NewRoot(), "current")); cur != want {
		t.Errorf("current -> %q, want %q", cur, want)
	}
	if b, _ := os.ReadFile(filepath.Join(s.NewRoot(), "current", "slot")); string(b) != want+"\n" {
		t.Errorf("through current: slot file %q", b)
	}
	// The kernel filesystems moved under the new root.
	for _, m := range EarlyMounts {
		if !isMountPoint(t, filepath.Join(s.NewRoot(), m.Target)) {
			t.Errorf("%s not moved under the new root", m.Target)
		}
		if isMountPoint(t, filepath.Join(prefix, m.Target)) {
			t.Errorf("%s still mounted at the old place", m.Target)
		}
	}
	if _, err := os.Stat(filepath.Join(s.NewRoot(), "proc", "self", "stat")); err != nil {
		t.Errorf("proc after the move: %v", err)
	}
	var st unix.Statfs_t
	must(t, unix.Statfs(s.NewRoot(), &st))
	if ro := st.Flags&unix.ST_RDONLY != 0; ro != s.Cmdline.ReadOnly {
		t.Errorf("root read-only = %v, cmdline ro = %v", ro, s.Cmdline.ReadOnly)
	}
}

func isMountPoint(t *testing.T, p string) bool {
	var a, b unix.Stat_t
	if unix.Lstat(p, &a) != nil || unix.Lstat(filepath.Dir(p), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// unmountAll takes the child's mounts down explicitly, so the ext4 image is
// clean and synced before the parent inspects it with debugfs.
func unmountAll(t *testing.T, prefix string) {
	nr := filepath.Join(prefix, "newroot")
	for _, m := range EarlyMounts {
		unix.Unmount(filepath.Join(nr, m.Target), unix.MNT_DETACH)
		unix.Unmount(filepath.Join(prefix, m.Target), unix.MNT_DETACH)
	}
	if err := unix.Unmount(nr, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		t.Errorf("unmount %s: %v", nr, err)
	}
}

// mountCount is the ext4 superblock's mount count, which only a read-write
// mount increments.
func mountCount(t *testing.T, img string) string {
	t.Helper()
	for _, l := range strings.Split(run(t, "dumpe2fs", "-h", img), "\n") {
		if v, ok := strings.CutPrefix(l, "Mount count:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("dumpe2fs -h %s: no mount count", img)
	return ""
}

func grepLines(out, substr string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
