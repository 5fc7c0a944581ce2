package initrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
)

// fakeBzImage is the start of an x86 bzImage: a setup header with "HdrS"
// and the kernel_version pointer, the banner where it points, and padding.
func fakeBzImage(banner string) []byte {
	b := make([]byte, 0x1000)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint16(b[0x20e:], 0x300)
	copy(b[0x500:], banner+"\x00")
	return b
}

const (
	bannerOld = "6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)"
	bannerNew = "6.12.118+deb12-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.12.118-1~deb12u1 (2026-11-28)"
)

var unameOld = Uname{Release: "6.1.0-57-cloud-amd64", Version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)"}

func TestKernelBanner(t *testing.T) {
	got, err := KernelBanner(bytes.NewReader(fakeBzImage(bannerNew)))
	if err != nil || got != bannerNew {
		t.Errorf("KernelBanner = %q, %v", got, err)
	}
	unterminated := fakeBzImage("")
	for i := 0x500; i < len(unterminated); i++ {
		unterminated[i] = 'x'
	}
	for name, img := range map[string][]byte{
		"short":        []byte("MZ"),
		"no HdrS":      make([]byte, 0x1000),
		"zero pointer": func() []byte { b := fakeBzImage(bannerNew); b[0x20e], b[0x20f] = 0, 0; return b }(),
		"unterminated": unterminated,
		"empty banner": fakeBzImage(""),
	} {
		if _, err := KernelBanner(bytes.NewReader(img)); !errors.Is(err, ErrNotBzImage) || !errors.Is(err, errdefs.ErrCorrupt) {
			t.Errorf("%s: KernelBanner error %v, want ErrNotBzImage", name, err)
		}
	}
}

func TestUnameSame(t *testing.T) {
	for _, tc := range []struct {
		banner string
		want   bool
	}{
		{bannerOld, true},
		{bannerNew, false},
		// Same ABI, another upload: another kernel.
		{"6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.193-1 (2026-12-01)", false},
		{"6.1.0-57-cloud-amd64-x (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)", false},
		{"", false},
	} {
		if got := unameOld.Same(tc.banner); got != tc.want {
			t.Errorf("Same(%q) = %v", tc.banner, got)
		}
	}
}

func TestWithMark(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"root=/dev/vda ro", "upgrade.kexec=b:r root=/dev/vda ro"},
		{"root=/dev/vda \n", "upgrade.kexec=b:r root=/dev/vda \n"},
		{"root=/dev/vda -- single", "upgrade.kexec=b:r root=/dev/vda -- single"},
		{`root="LABEL=a b -- x`, `upgrade.kexec=b:r root="LABEL=a b -- x`},
		{"", "upgrade.kexec=b:r"},
	} {
		got := WithMark(tc.in, "upgrade.kexec=b:r")
		if got != tc.want {
			t.Errorf("WithMark(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzWithMark: the mark is read back from any command line that does not
// carry one already, and every other parameter reads as before.
func FuzzWithMark(f *testing.F) {
	f.Add("console=ttyS0 root=LABEL=xo rootwait upgrade.slot=b")
	f.Add(`root="LABEL=a b" -- x`)
	f.Add(`root="LABEL=a -- x`)
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, KexecParam) {
			return // a later mark wins, as the kernel's last-wins rule says
		}
		want := ParseCmdline(s)
		want.KexecSlot, want.KexecRelease = "b", "6.12.118+deb12-cloud-amd64"
		got := ParseCmdline(WithMark(s, KexecParam+"=b:6.12.118+deb12-cloud-amd64"))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("ParseCmdline(WithMark(%q)) (-want +got):\n%s", s, diff)
		}
	})
}

// writeSlot makes a slot directory from a map of path -> content; a
// content starting with "->" is a symlink.
func writeSlot(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		if target, ok := strings.CutPrefix(c, "->"); ok {
			must(t, os.Symlink(target, full))
			continue
		}
		must(t, os.WriteFile(full, []byte(c), 0o644))
	}
	return dir
}

func TestPlanKernel(t *testing.T) {
	oldK, newK := string(fakeBzImage(bannerOld)), string(fakeBzImage(bannerNew))
	const cmdline = "console=ttyS0 root=LABEL=x ro -- single"
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    *KernelSwitch
		wantErr error
	}{
		{name: "no kernel", files: map[string]string{"sbin/init": "x"}},
		{name: "same kernel", files: map[string]string{"boot/vmlinuz": "->vmlinuz-6.1", "boot/vmlinuz-6.1": oldK}},
		{name: "new kernel in boot/", files: map[string]string{
			"boot/vmlinuz": "->vmlinuz-6.12", "boot/vmlinuz-6.12": newK,
			"boot/initrd.img": "->initrd.img-6.12", "boot/initrd.img-6.12": "cpio"},
			want: &KernelSwitch{Slot: "b", Kernel: "boot/vmlinuz", Initrd: "boot/initrd.img",
				Release: "6.12.118+deb12-cloud-amd64", Banner: bannerNew,
				Cmdline: "upgrade.kexec=b:6.12.118+deb12-cloud-amd64 console=ttyS0 root=LABEL=x ro -- single"}},
		{name: "Debian's links at the root", files: map[string]string{
			"vmlinuz": "->boot/vmlinuz-6.12", "boot/vmlinuz-6.12": newK,
			"initrd.img": "->boot/initrd.img-6.12", "boot/initrd.img-6.12": "cpio"},
			want: &KernelSwitch{Slot: "b", Kernel: "vmlinuz", Initrd: "initrd.img",
				Release: "6.12.118+deb12-cloud-amd64", Banner: bannerNew,
				Cmdline: "upgrade.kexec=b:6.12.118+deb12-cloud-amd64 console=ttyS0 root=LABEL=x ro -- single"}},
		{name: "boot/ wins", files: map[string]string{"boot/vmlinuz": oldK, "vmlinuz": newK, "initrd.img": "cpio"}},
		{name: "no initrd", files: map[string]string{"boot/vmlinuz": newK}, wantErr: os.ErrNotExist},
		{name: "corrupt kernel", files: map[string]string{"boot/vmlinuz": "garbage", "boot/initrd.img": "cpio"}, wantErr: ErrNotBzImage},
		{name: "dangling link", files: map[string]string{"boot/vmlinuz": "->vmlinuz-gone"}, wantErr: os.ErrNotExist},
		{name: "link out of the slot", files: map[string]string{"boot/vmlinuz": "->/etc/passwd"}, wantErr: errAny},
		{name: "link up out of the slot", files: map[string]string{"boot/vmlinuz": "->../../../x"}, wantErr: errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeSlot(t, tc.files)
			got, err := PlanKernel(dir, "b", unameOld, cmdline)
			if tc.wantErr != nil {
				if err == nil || (tc.wantErr != errAny && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("PlanKernel = %+v, %v; want error %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PlanKernel (-want +got):\n%s", diff)
			}
		})
	}
}

var errAny = errors.New("any error")
