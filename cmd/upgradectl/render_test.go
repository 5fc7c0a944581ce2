package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

// TestBarLineFits: a frame never reaches the terminal's last column (it
// wrapped at 80 columns before), whatever the phase and figures.
func TestBarLineFits(t *testing.T) {
	for _, width := range []int{20, 40, 60, 80, 132} {
		for _, tc := range []struct {
			state       string
			pct         uint32
			done, total uint64
			rate        float64
		}{
			{"checking", 0, 0, 0, 0},
			{"downloading", 42, 123456789012, 987654321098, 12345678},
			{"downloading", 99, 1 << 40, 1 << 41, 1},
			{"ready-to-reboot", 100, 0, 0, 0},
		} {
			line := barLine(width, tc.state, tc.pct, tc.done, tc.total, tc.rate)
			if len(line) >= width {
				t.Errorf("width %d, %s: %d columns: %q", width, tc.state, len(line), line)
			}
			if width >= 60 && !strings.Contains(line, tc.state) {
				t.Errorf("width %d: the state is cut off: %q", width, line)
			}
		}
	}
	if line := barLine(80, "downloading", 50, 5e6, 1e7, 1e6); !strings.Contains(line, "ETA") || !strings.HasPrefix(line, "[") {
		t.Errorf("at 80 columns a download shows the bar and the ETA: %q", line)
	}
}

// TestFirstFrameIsOurs: the snapshot taken before Upgrade describes the
// previous job ("100% ready-to-reboot"); nothing of it is drawn.
func TestFirstFrameIsOurs(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &cli{out: f, json: true}
	r := newRenderer(c, 8)
	v := dbus.MakeVariant
	r.update(map[string]dbus.Variant{"Job": v(uint32(7)), "State": v("ready-to-reboot"), "Progress": v(uint32(100))})
	r.update(map[string]dbus.Variant{"Job": v(uint32(8)), "State": v("checking"), "Progress": v(uint32(0))})
	b, _ := os.ReadFile(f.Name())
	if got := string(b); strings.Contains(got, "ready-to-reboot") || !strings.Contains(got, `"state":"checking"`) {
		t.Errorf("frames: %s", got)
	}
}

// TestReboot: --reboot runs the reboot command (systemctl reboot, which
// honours inhibitors and asks polkit) and reports its failure.
func TestReboot(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "rebooted")
	old := rebootCommand
	t.Cleanup(func() { rebootCommand = old })
	rebootCommand = []string{"sh", "-c", "echo yes > " + mark}
	if err := reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(mark); err != nil || strings.TrimSpace(string(b)) != "yes" {
		t.Errorf("the reboot command did not run: %q, %v", b, err)
	}
	rebootCommand = []string{"false"}
	if err := reboot(t.Context()); err == nil {
		t.Error("a failed reboot command was not reported")
	}
}
