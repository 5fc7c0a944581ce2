// Command guest is /sbin/init inside the slots of the power-cut VM test. It
// runs on the real root filesystem after the project's initrd has chosen the
// slot, so what it sees after a cut is exactly what a laptop would see: the
// journal replayed by the kernel, the boot pointer after the initrd's try.
//
// Without powercut.check=1 on the kernel command line it runs the real
// `upgraded --once --activate` from the second disk (a "USB stick" holding
// the project's static upgraded and the repository as a file:// mirror; the
// binary is kept out of the slots so that verifying them under TCG stays
// quick) and powers off; the host pulls the plug somewhere in
// between. With powercut.check=1 it first reports what booted and verifies,
// with the security service's own code and the slot's trusted keys, every
// slot the pointer names; then it runs the upgrade again (the "next full
// run") unless the booted slot already holds the target version, and
// reports the pointer that run left. Every fact is one "powercut:" console
// line, which the host judges; the guest itself decides nothing.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo/sigkey"
	"laptop.org/upgrade/security"
)

const (
	mediaDev   = "/dev/vdb" // the second -drive, after the root disk
	mediaMount = "/media"   // a persistent directory of the root, outside the slots
	keysDir    = "/etc/upgrade/keys"
)

func say(format string, a ...any) {
	fmt.Printf("powercut: "+format+"\n", a...)
}

func main() {
	args := cmdline()
	check := args["powercut.check"] == "1"
	want, _ := strconv.ParseUint(args["powercut.version"], 10, 64)
	if err := run(check, want); err != nil {
		say("ERROR %v", err)
	}
	say("powering off")
	unix.Sync()
	// A clean power-off, as the test's e2fsck -fn (which does not replay
	// the journal) expects: read-only, the journal is checkpointed and the
	// filesystem marked clean. After a sync alone, the last transaction's
	// metadata could still be only in the journal (a CI run's fsck saw
	// stale bitmaps and "skipping journal recovery").
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		say("remount / read-only: %v", err)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		say("power off: %v", err)
	}
	for {
		time.Sleep(time.Hour) // PID 1 never exits
	}
}

func cmdline() map[string]string {
	b, _ := os.ReadFile("/proc/cmdline")
	out := map[string]string{}
	for _, w := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(w, "=")
		out[k] = v
	}
	return out
}

func run(check bool, want uint64) error {
	root := layout.Root{Dir: "/"}
	booted, err := root.CurrentSlot()
	if err != nil {
		return fmt.Errorf("current: %w", err)
	}
	exe, _ := os.Readlink("/proc/self/exe")
	say("booted slot=%s exe=%s check=%t", booted, exe, check)
	keys, err := sigkey.LoadKeyring(keysDir)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	sec := &security.Service{Root: root, Keys: keys, Policy: &manifest.Policy{AllowSetuid: true}}
	if check {
		if v := report(sec, "before", booted); v >= want {
			say("rerun not needed: booted slot %s holds version %d", booted, v)
			return nil
		}
	}
	if err := mountMedia(); err != nil {
		return err
	}
	defer unix.Unmount(mediaMount, 0)
	say("upgrade start")
	start := time.Now()
	cmd := exec.Command(mediaMount+"/bin/upgraded", "--once", "--activate", "--root", "/", "--keys", keysDir,
		"--mirror", "file://"+mediaMount+"/repo/", "--network-wait", "1s")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		say("upgrade FAILED after %d ms: %v", time.Since(start).Milliseconds(), err)
		return nil
	}
	say("upgrade done in %d ms", time.Since(start).Milliseconds())
	if check {
		report(sec, "after", booted)
	}
	return nil
}

// report prints the pointer and verifies the booted slot and every slot the
// pointer names. A slot with no role is left alone: a cut in the middle of an
// upgrade leaves it half written, as it should. It returns the booted slot's
// verified version (0: it does not verify).
func report(sec *security.Service, when string, booted layout.Slot) uint64 {
	p, err := bootptr.Read(sec.Root.BootPointer())
	if err != nil {
		say("%s pointer ERROR %v", when, err)
	} else {
		say("%s pointer next=%s good=%s trial=%t tries=%d failed=%s seq=%d", when, p.Next, p.Good, p.Trial, p.Tries, p.Failed, p.Seq)
	}
	roles := map[layout.Slot][]string{}
	roles[booted] = append(roles[booted], "booted")
	if err == nil {
		roles[p.Next] = append(roles[p.Next], "next")
		roles[p.Good] = append(roles[p.Good], "good")
	}
	var version uint64
	for _, sl := range []layout.Slot{layout.SlotA, layout.SlotB} {
		if len(roles[sl]) == 0 {
			say("%s slot %s has no role: not verified", when, sl)
			continue
		}
		role := strings.Join(roles[sl], ",")
		start := time.Now()
		got, err := sec.Verify(context.Background(), sl)
		ms := time.Since(start).Milliseconds()
		if err != nil {
			say("%s verify %s (%s) FAIL in %d ms: %v", when, sl, role, ms, err)
		} else {
			say("%s verify %s (%s) ok version %d in %d ms", when, sl, role, got.Version, ms)
			if sl == booted {
				version = uint64(got.Version)
			}
		}
	}
	return version
}

// mountMedia mounts the second disk read-only; the device may show up a
// moment after the initrd found the root disk.
func mountMedia() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Mount(mediaDev, mediaMount, "ext4", unix.MS_RDONLY, "noload")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mount %s on %s: %w", mediaDev, mediaMount, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
