package initrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

func names(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.String())
	}
	return out
}

// TestPlan pins the order of the boot: the pointer is decided and written
// after the root is mounted and before current moves, and everything that
// touches the disk happens before switch_root.
func TestPlan(t *testing.T) {
	want := []string{"mount-early", "cmdline", "load-modules", "find-root", "mount-root", "choose-slot",
		"choose-kernel", "kexec", "set-current", "move-mounts", "remount-ro", "switch-root", "exec-init"}
	if diff := cmp.Diff(want, names(Plan())); diff != "" {
		t.Errorf("Plan (-want +got):\n%s", diff)
	}
	wantSafe := []string{"mount-early", "cmdline", "find-root", "mount-root", "choose-slot", "choose-kernel", "set-current", "move-mounts", "remount-ro"}
	if diff := cmp.Diff(wantSafe, names(HostSafe())); diff != "" {
		t.Errorf("HostSafe (-want +got):\n%s", diff)
	}
	var got []string
	for _, m := range EarlyMounts {
		got = append(got, m.String())
	}
	wantMounts := []string{"mount -t proc proc /proc", "mount -t sysfs sysfs /sys",
		"mount -t devtmpfs devtmpfs /dev -o mode=0755", "mount -t tmpfs tmpfs /run -o mode=0755"}
	if diff := cmp.Diff(wantMounts, got); diff != "" {
		t.Errorf("EarlyMounts (-want +got):\n%s", diff)
	}
}

func TestRunNamesFailingStep(t *testing.T) {
	var ran []string
	step := func(name string, err error) Step {
		return Step{name, func(*State) error { ran = append(ran, name); return err }}
	}
	err := Run(&State{}, []Step{step("one", nil), step("two", fmt.Errorf("disk gone: %w", errdefs.ErrNotFound)), step("three", nil)})
	if err == nil || err.Error() != "step two: disk gone: not found" || !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Run = %v", err)
	}
	if diff := cmp.Diff([]string{"one", "two"}, ran); diff != "" {
		t.Errorf("steps run (-want +got):\n%s", diff)
	}
}

func TestSetCurrent(t *testing.T) {
	root := layout.Root{Dir: t.TempDir()}
	for _, s := range []string{"a", "b"} {
		must(t, os.Mkdir(root.Slot(layout.Slot(s)), 0o755))
	}
	for _, tc := range []struct {
		to          layout.Slot
		wantChanged bool
	}{{"a", true}, {"a", false}, {"b", true}, {"b", false}, {"a", true}} {
		changed, err := SetCurrent(root, tc.to)
		if err != nil || changed != tc.wantChanged {
			t.Fatalf("SetCurrent(%s) = %v, %v; want changed=%v", tc.to, changed, err, tc.wantChanged)
		}
		if l, _ := os.Readlink(root.Current()); l != string(tc.to) {
			t.Fatalf("current -> %q, want %q", l, tc.to)
		}
	}
	// The "mv" mistake: nothing may land inside the slot the link pointed at.
	for _, s := range []string{"a", "b"} {
		if ents, _ := os.ReadDir(root.Slot(layout.Slot(s))); len(ents) != 0 {
			t.Errorf("slot %s gained %d entries", s, len(ents))
		}
	}
	ents, _ := os.ReadDir(root.Dir)
	if len(ents) != 3 {
		t.Errorf("root holds %d entries, want a, b, current (temp link left?)", len(ents))
	}
	// A real directory at current is refused, not replaced.
	must(t, os.Remove(root.Current()))
	must(t, os.Mkdir(root.Current(), 0o755))
	if _, err := SetCurrent(root, "b"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("SetCurrent over a directory = %v; want ErrFailedPrecondition", err)
	}
}

func TestReadExtSuper(t *testing.T) {
	img := filepath.Join(t.TempDir(), "fs.img")
	run(t, "mkfs.ext4", "-q", "-F", "-L", "xo-label", "-U", "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3", img, "4M")
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	sb, err := ReadExtSuper(f)
	must(t, err)
	if diff := cmp.Diff(ExtSuper{UUID: "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3", Label: "xo-label"}, sb); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := ReadExtSuper(bytes.NewReader(make([]byte, 4096))); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("zeros: %v; want ErrNotFound", err)
	}
	if _, err := ReadExtSuper(bytes.NewReader(make([]byte, 100))); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("short: %v; want ErrNotFound", err)
	}
}

func TestPartUUID(t *testing.T) {
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xAA
	binary.LittleEndian.PutUint32(mbr[0x1B8:], 0x1234abcd)
	mbr[446+4] = 0x83

	gpt := make([]byte, 8192)
	copy(gpt, mbr)
	gpt[446+4] = 0xEE
	copy(gpt[512:], "EFI PART")
	binary.LittleEndian.PutUint64(gpt[512+0x48:], 2) // entries at LBA 2
	binary.LittleEndian.PutUint32(gpt[512+0x50:], 128)
	binary.LittleEndian.PutUint32(gpt[512+0x54:], 128)
	// Partition 2's unique GUID 5452574f-2211-4433-5566-778899aabb01, mixed-endian on disk.
	copy(gpt[1024+128+16:], []byte{0x4f, 0x57, 0x52, 0x54, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x01})

	for _, tc := range []struct {
		name    string
		disk    []byte
		n       int
		want    string
		wantErr string
	}{
		{"mbr", mbr, 3, "1234abcd-03", ""},
		{"gpt", gpt, 2, "5452574f-2211-4433-5566-778899aabb01", ""},
		{"gpt out of range", gpt, 129, "", "not in GPT"},
		{"no table", make([]byte, 4096), 1, "", "no partition table"},
	} {
		got, err := PartUUID(bytes.NewReader(tc.disk), tc.n, 512)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %q, %v; want error %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
