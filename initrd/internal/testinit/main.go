// Command testinit is the "real init" in the VM test's slots. It reports on
// the console what the initrd handed over — the slot it runs from, where
// /current points, the boot pointer, the moved mounts — and powers off, so
// each boot of the VM test is one short qemu run judged by console lines.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/layout"
)

func main() {
	exe, _ := os.Readlink("/proc/self/exe")
	cur, _ := os.Readlink("/current")
	slot := strings.Split(strings.TrimPrefix(exe, "/"), "/")[0]
	fmt.Printf("slot-init: pid=%d slot=%s current=%s exe=%s args=%q\n", os.Getpid(), slot, cur, exe, os.Args[1:])
	p, err := bootptr.Read(layout.Root{Dir: "/"}.BootPointer())
	if err != nil {
		fmt.Printf("slot-init: pointer error: %v\n", err)
	} else {
		fmt.Printf("slot-init: pointer next=%s good=%s trial=%t tries=%d failed=%s seq=%d\n", p.Next, p.Good, p.Trial, p.Tries, p.Failed, p.Seq)
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	var have []string
	rootMode := "?"
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 3 {
			have = append(have, f[1]+":"+f[2])
			if f[1] == "/" {
				rootMode, _, _ = strings.Cut(f[3], ",") // the last "/" is the visible one
			}
		}
	}
	fmt.Printf("slot-init: mounts %s\n", strings.Join(have, " "))
	fmt.Printf("slot-init: root %s\n", rootMode)
	if _, err := os.Stat("/newroot"); err == nil {
		fmt.Println("slot-init: /newroot visible: initramfs not switched away")
	}
	if ents, err := os.ReadDir(filepath.Join("/dev")); err == nil {
		fmt.Printf("slot-init: /dev has %d entries\n", len(ents))
	}
	reportKernel(slot)
	fmt.Println("slot-init: powering off")
	unix.Sync()
	// Read-only flushes ext4's journal to the home locations: the test
	// reads the pointer back with debugfs, which does not replay a journal,
	// and after a sync alone the last writes can live only in the journal.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		fmt.Printf("slot-init: remount / read-only: %v\n", err)
	}
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("slot-init: power off: %v\n", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// reportKernel prints the running kernel's release and loads the modules
// the test put in the slot's own lib/modules/RELEASE/kernel/fs/nls: a
// module of another kernel is refused, so "loaded" shows that the slot's
// kernel and its modules go together.
func reportKernel(slot string) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		fmt.Printf("slot-init: uname: %v\n", err)
		return
	}
	rel := unix.ByteSliceToString(u.Release[:])
	fmt.Printf("slot-init: kernel %s\n", rel)
	mods, _ := filepath.Glob(filepath.Join("/", slot, "lib/modules", rel, "kernel/fs/nls/*.ko*"))
	for _, m := range mods {
		f, err := os.Open(m)
		if err != nil {
			fmt.Printf("slot-init: module %s: %v\n", filepath.Base(m), err)
			continue
		}
		flags := 0
		if !strings.HasSuffix(m, ".ko") {
			flags = unix.MODULE_INIT_COMPRESSED_FILE
		}
		err = unix.FinitModule(int(f.Fd()), "", flags)
		f.Close()
		if err != nil {
			fmt.Printf("slot-init: module %s: %v\n", filepath.Base(m), err)
			continue
		}
		fmt.Printf("slot-init: module %s loaded\n", filepath.Base(m))
	}
}
