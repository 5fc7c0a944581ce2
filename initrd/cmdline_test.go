package initrd

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Cmdline
	}{
		{"", Cmdline{}},
		{"console=ttyS0 panic=-1 root=LABEL=xo rootwait\n", Cmdline{Root: "LABEL=xo", RootWait: true}},
		{"root=/dev/vda1 rootfstype=ext4 rootflags=data=journal,noatime ro", Cmdline{Root: "/dev/vda1", RootFSType: "ext4", RootFlags: "data=journal,noatime", ReadOnly: true}},
		{"ro rw", Cmdline{}},
		{"rw ro", Cmdline{ReadOnly: true}},
		{"root=UUID=0a1b2c3d-0000-4000-8000-123456789abc", Cmdline{Root: "UUID=0a1b2c3d-0000-4000-8000-123456789abc"}},
		{"root=PARTUUID=5452574f-2211-4433-5566-778899aabb01", Cmdline{Root: "PARTUUID=5452574f-2211-4433-5566-778899aabb01"}},
		{"rootdelay=7", Cmdline{RootDelay: 7 * time.Second}},
		{"rootdelay=x rootdelay=-1", Cmdline{}},
		{"init=/bin/sh upgrade.slot=b", Cmdline{Init: "/bin/sh", Slot: "b"}},
		{"upgrade.slot=z", Cmdline{Slot: "z"}},
		{"upgrade.slot=a upgrade.slot=b", Cmdline{Slot: "b"}},
		{"upgrade.slotx=b upgrade=1 slot=b", Cmdline{}},
		{"upgrade.timing", Cmdline{Timing: true}},
		{"upgrade.timing=1", Cmdline{Timing: true}},
		{"upgrade.timing upgrade.timing=0", Cmdline{}},
		{`root=LABEL="my disk" quiet`, Cmdline{Root: "LABEL=my disk"}},
		{`"root=LABEL=a b"`, Cmdline{Root: "LABEL=a b"}},
		{"root=/dev/vda  \t rootwait=1 ro=1", Cmdline{Root: "/dev/vda"}},
		{"root=/dev/vda -- single upgrade.slot=b", Cmdline{Root: "/dev/vda", InitArgs: []string{"single", "upgrade.slot=b"}}},
		{"root=/dev/vda --", Cmdline{Root: "/dev/vda", InitArgs: nil}},
		{"upgrade.kexec=b:6.12.118+deb12-cloud-amd64", Cmdline{KexecSlot: "b", KexecRelease: "6.12.118+deb12-cloud-amd64"}},
		{"upgrade.kexec=a", Cmdline{KexecSlot: "a"}},
		{"upgrade.kexec=b:x -- upgrade.kexec=a:y", Cmdline{KexecSlot: "b", KexecRelease: "x", InitArgs: []string{"upgrade.kexec=a:y"}}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ParseCmdline(tc.in)); diff != "" {
				t.Errorf("ParseCmdline(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestWait(t *testing.T) {
	for _, tc := range []struct {
		c    Cmdline
		want time.Duration
	}{
		{Cmdline{}, 5 * time.Second},
		{Cmdline{RootWait: true}, 30 * time.Second},
		{Cmdline{RootWait: true, RootDelay: 2 * time.Second}, 2 * time.Second},
	} {
		if got := tc.c.Wait(); got != tc.want {
			t.Errorf("%+v.Wait() = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestParseRoot(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    RootSpec
		wantErr string
	}{
		{in: "/dev/vda1", want: RootSpec{"path", "/dev/vda1"}},
		{in: "LABEL=xo-root", want: RootSpec{"LABEL", "xo-root"}},
		{in: "UUID=abc", want: RootSpec{"UUID", "abc"}},
		{in: "PARTUUID=abc-01", want: RootSpec{"PARTUUID", "abc-01"}},
		{in: "", wantErr: "no root="},
		{in: "/dev/", wantErr: "want /dev/"},
		{in: "LABEL=", wantErr: "want /dev/"},
		{in: "vda1", wantErr: "want /dev/"},
		{in: "PARTLABEL=x", wantErr: "want /dev/"},
	} {
		got, err := ParseRoot(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRoot(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRoot(%q): %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseRoot(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("console=ttyS0 root=LABEL=xo rootwait upgrade.slot=b")
	f.Add(`root="LABEL=a b" -- x`)
	f.Add("rootdelay=99999999999 init=")
	f.Fuzz(func(t *testing.T, s string) {
		c := ParseCmdline(s)
		// Whatever the input, the result must be usable: a bounded wait,
		// and the words Cmdline took came from the input.
		if w := c.Wait(); w <= 0 || w > 65535*time.Second {
			t.Fatalf("Wait() = %v", w)
		}
		// Quotes are syntax, removed as the words are read
		// (upgrade.slot=0"0 gives slot 00).
		unquoted := strings.ReplaceAll(s, `"`, "")
		if c.Root != "" && !strings.Contains(unquoted, c.Root) {
			t.Fatalf("root %q not in input", c.Root)
		}
		if c.Slot != "" && !strings.Contains(unquoted, string(c.Slot)) {
			t.Fatalf("slot %q not in input", c.Slot)
		}
		_, _ = ParseRoot(c.Root)
	})
}
