package initrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// SlotKernelPaths are where /init looks for a slot's kernel and initrd,
// relative to the slot, first match wins: boot/ (as docs/boot.md asks of a
// slot) and the root, where Debian's linux-update-symlinks puts its links.
// Each is normally a relative symlink to the versioned file
// (vmlinuz -> vmlinuz-6.12.118+deb12-cloud-amd64); it is resolved inside
// the slot, never outside it.
var SlotKernelPaths = [][2]string{{"boot/vmlinuz", "boot/initrd.img"}, {"vmlinuz", "initrd.img"}}

// KexecParam is the command-line mark /init adds when it kexecs a slot's
// kernel: upgrade.kexec=SLOT:RELEASE. Its presence means "this start comes
// from that kexec": the slot is chosen and its try paid, so /init neither
// decides again nor kexecs again (no loop, whatever the kernels are).
const KexecParam = "upgrade.kexec"

// KernelSwitch is a decided kexec: the slot's kernel and initrd (paths
// relative to the slot) and the command line for the new kernel.
type KernelSwitch struct {
	Slot            layout.Slot
	Kernel, Initrd  string
	Release, Banner string // the slot kernel's release and version banner
	Cmdline         string
}

// Uname is the running kernel's identity, as uname(2) gives it.
type Uname struct{ Release, Version string }

func runningKernel() (Uname, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Uname{}, err
	}
	return Uname{unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Version[:])}, nil
}

// Same says whether a bzImage banner is this kernel's: the banner is
// "RELEASE (BUILDER@HOST) VERSION", and Debian's VERSION carries the
// package version and build date, so two builds differ even when the ABI
// (RELEASE) does not.
func (u Uname) Same(banner string) bool {
	return strings.HasPrefix(banner, u.Release+" (") && strings.HasSuffix(banner, ") "+u.Version)
}

// ErrNotBzImage says a slot's kernel has no x86 boot-protocol header.
var ErrNotBzImage = fmt.Errorf("not a bzImage: %w", errdefs.ErrCorrupt)

// KernelBanner reads the version banner from an x86 bzImage's setup
// header (boot protocol 2.00+: "HdrS" at 0x202, the kernel_version
// pointer at 0x20e, relative to 0x200), without reading the whole image.
func KernelBanner(r io.ReaderAt) (string, error) {
	hdr := make([]byte, 0x210)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return "", fmt.Errorf("read setup header: %w", errors.Join(ErrNotBzImage, err))
	}
	off := int64(binary.LittleEndian.Uint16(hdr[0x20e:]))
	if string(hdr[0x202:0x206]) != "HdrS" || off == 0 {
		return "", ErrNotBzImage
	}
	buf := make([]byte, 256)
	n, err := r.ReadAt(buf, off+0x200)
	if i := bytes.IndexByte(buf[:n], 0); i > 0 {
		return string(buf[:i]), nil
	}
	if err == nil {
		err = fmt.Errorf("banner at %#x not terminated", off+0x200)
	}
	return "", fmt.Errorf("read kernel banner: %w", errors.Join(ErrNotBzImage, err))
}

// PlanKernel decides whether slotDir's kernel must replace the running
// one. It returns nil when the slot carries no kernel (an older slot: it
// keeps the kernel the firmware loaded) or the same kernel. A kernel that
// is present but unreadable, or lacks its initrd, is an error: the try is
// already paid, so the reboot that follows moves boot counting on.
func PlanKernel(slotDir string, slot layout.Slot, running Uname, cmdline string) (*KernelSwitch, error) {
	root, err := os.OpenRoot(slotDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for _, p := range SlotKernelPaths {
		if _, err := root.Lstat(p[0]); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		// From here a missing target (a dangling link) is a broken slot.
		f, err := root.Open(p[0])
		if err != nil {
			return nil, fmt.Errorf("slot %s kernel %s: %w", slot, p[0], err)
		}
		banner, err := KernelBanner(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("slot %s kernel %s: %w", slot, p[0], err)
		}
		if running.Same(banner) {
			return nil, nil
		}
		if _, err := root.Stat(p[1]); err != nil {
			return nil, fmt.Errorf("slot %s kernel %s needs its initrd: %w", slot, p[0], err)
		}
		rel, _, _ := strings.Cut(banner, " ")
		return &KernelSwitch{Slot: slot, Kernel: p[0], Initrd: p[1], Release: rel, Banner: banner,
			Cmdline: WithMark(cmdline, KexecParam+"="+string(slot)+":"+rel)}, nil
	}
	return nil, nil
}

// WithMark puts a parameter first on a command line: before any "--" and
// outside any quote the rest may open, so it is always read as a kernel
// parameter and leaves every other word as it was.
func WithMark(cmdline, param string) string {
	if cmdline == "" {
		return param
	}
	return param + " " + cmdline
}

// chooseKernel is the host-safe half of the kernel switch: it decides, and
// after a kexec checks that the kernel running is the one asked for.
func chooseKernel(s *State) error {
	if s.Decision.Boot == "" {
		return fmt.Errorf("no slot chosen")
	}
	running, err := runningKernel()
	if err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	if s.Cmdline.KexecSlot != "" {
		if s.Cmdline.KexecRelease != running.Release {
			s.logf("WARNING: kexec mark asks for kernel %s, running %s; not switching again", s.Cmdline.KexecRelease, running.Release)
		} else {
			s.logf("running slot %s's kernel %s", s.Decision.Boot, running.Release)
		}
		return nil
	}
	root := layout.Root{Dir: s.NewRoot()}
	ks, err := PlanKernel(root.Slot(s.Decision.Boot), s.Decision.Boot, running, s.RawCmdline)
	if err != nil {
		return err
	}
	if ks == nil {
		return nil
	}
	s.Switch = ks
	s.logf("slot %s carries kernel %s, running %s: switching by kexec", ks.Slot, ks.Release, running.Release)
	return nil
}

// kexecKernel loads the slot's kernel and initrd with kexec_file_load(2)
// (the kernel reads and, where configured, checks the files itself), puts
// the root filesystem away clean, and jumps: reboot(LINUX_REBOOT_CMD_KEXEC)
// returns only on failure.
func kexecKernel(s *State) error {
	ks := s.Switch
	if ks == nil {
		return nil
	}
	root, err := os.OpenRoot(layout.Root{Dir: s.NewRoot()}.Slot(ks.Slot))
	if err != nil {
		return err
	}
	defer root.Close()
	kf, err := root.Open(ks.Kernel)
	if err != nil {
		return err
	}
	defer kf.Close()
	inf, err := root.Open(ks.Initrd)
	if err != nil {
		return err
	}
	defer inf.Close()
	t0 := time.Now()
	if err := unix.KexecFileLoad(int(kf.Fd()), int(inf.Fd()), ks.Cmdline, 0); err != nil {
		return fmt.Errorf("kexec_file_load %s/%s: %w", ks.Slot, ks.Kernel, err)
	}
	load := time.Since(t0)
	kf.Close()
	inf.Close()
	root.Close()
	unix.Sync()
	if err := unix.Unmount(s.NewRoot(), 0); err != nil {
		s.logf("WARNING: unmount %s before kexec: %v", s.NewRoot(), err)
	}
	s.logf("kexec %s (%s); loaded in %d ms, %d ms after /init started", ks.Release, ks.Cmdline, load.Milliseconds(), s.since().Milliseconds())
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC); err != nil {
		return fmt.Errorf("reboot(LINUX_REBOOT_CMD_KEXEC): %w", err)
	}
	return fmt.Errorf("reboot(LINUX_REBOOT_CMD_KEXEC) returned")
}
