// Command floorinit is the third image of the initrd comparison benchmark
// (make bench-initrd): the least a Go PID 1 can do to reach the real init
// on the reference VM, so that the figure shows how much of our image's
// time any Go initramfs would spend anyway (the Go runtime's start, the
// kernel's module loading and device probing, the root mount). It loads
// the image's modules one after another in the order file's order, mounts
// root= (a device path) as ext4, moves /dev over, switches root and execs
// /sbin/init: no slot choice, no fallback, no waiting, the initramfs left
// unfreed. It is not a usable initramfs; on any error it reboots, which
// ends the benchmark's qemu (-no-reboot).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	moduleDir   = "/lib/modules/"
	moduleOrder = moduleDir + "initrd.order" // see initrd.ModuleOrder
	newRoot     = "/newroot"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("floorinit: %v\n", err)
		unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	}
}

func run() error {
	for _, d := range []string{"/dev", "/proc", newRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	root := ""
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "root="); ok {
			root = v
		}
	}
	if !strings.HasPrefix(root, "/dev/") {
		return fmt.Errorf("root=%q: want a device path", root)
	}
	if err := loadModules(); err != nil {
		return err
	}
	if err := unix.Mount(root, newRoot, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", root, err)
	}
	if err := unix.Mount("/dev", newRoot+"/dev", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move /dev: %w", err)
	}
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s onto /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return unix.Exec("/sbin/init", []string{"/sbin/init"}, os.Environ())
}

// loadModules gives each module of the order file ("file.ko[: deps]" lines,
// dependencies first) to finit_module in turn.
func loadModules() error {
	order, err := os.ReadFile(moduleOrder)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(order), "\n") {
		line, _, _ = strings.Cut(line, "#")
		file, _, _ := strings.Cut(line, ":")
		if file = strings.TrimSpace(file); file == "" {
			continue
		}
		fd, err := unix.Open(moduleDir+file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.FinitModule(fd, "", 0)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("finit_module %s: %w", file, err)
		}
	}
	return nil
}
