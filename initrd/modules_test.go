package initrd

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseModuleOrder(t *testing.T) {
	in := "# made by mkinitrd\nvirtio_ring.ko:\n\nvirtio.ko: virtio_ring.ko # needs the ring\nold.ko\n"
	got, err := ParseModuleOrder(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Module{{File: "virtio_ring.ko", Deps: []string{}}, {File: "virtio.ko", Deps: []string{"virtio_ring.ko"}},
		{File: "old.ko", Deps: []string{}, Sequential: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseModuleOrder (-want +got):\n%s", diff)
	}
	for _, bad := range []string{": a.ko", "dir/a.ko:", "a b.ko: c.ko"} {
		if _, err := ParseModuleOrder(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseModuleOrder(%q) accepted", bad)
		}
	}
}

// TestLevels pins the rounds of the parallel loader: a module never shares
// a round with, or precedes, anything it needs.
func TestLevels(t *testing.T) {
	par := func(file string, deps ...string) Module { return Module{File: file, Deps: deps} }
	seq := func(file string) Module { return Module{File: file, Sequential: true} }
	for _, tc := range []struct {
		name    string
		mods    []Module
		want    [][]string
		wantErr string
	}{
		{name: "empty"},
		{name: "virtio as mkinitrd writes it", mods: []Module{
			par("virtio_ring.ko"), par("virtio.ko", "virtio_ring.ko"), par("virtio_pci_legacy_dev.ko"),
			par("virtio_pci_modern_dev.ko"),
			par("virtio_pci.ko", "virtio.ko", "virtio_pci_legacy_dev.ko", "virtio_pci_modern_dev.ko", "virtio_ring.ko"),
			par("virtio_blk.ko", "virtio.ko", "virtio_ring.ko")},
			want: [][]string{{"virtio_ring.ko", "virtio_pci_legacy_dev.ko", "virtio_pci_modern_dev.ko"},
				{"virtio.ko"}, {"virtio_pci.ko", "virtio_blk.ko"}}},
		{name: "independent modules share one round", mods: []Module{par("a.ko"), par("b.ko"), par("c.ko")},
			want: [][]string{{"a.ko", "b.ko", "c.ko"}}},
		{name: "old order file loads in sequence", mods: []Module{seq("a.ko"), seq("b.ko"), seq("c.ko")},
			want: [][]string{{"a.ko"}, {"b.ko"}, {"c.ko"}}},
		{name: "a line without deps waits for the highest round so far",
			mods: []Module{par("a.ko"), par("b.ko", "a.ko"), par("c.ko"), seq("d.ko"), par("e.ko")},
			want: [][]string{{"a.ko", "c.ko", "e.ko"}, {"b.ko"}, {"d.ko"}}},
		{name: "dependency later in the file", mods: []Module{par("a.ko", "b.ko"), par("b.ko")},
			wantErr: "a.ko needs b.ko, which is not earlier"},
		{name: "unknown dependency", mods: []Module{par("a.ko", "zz.ko")}, wantErr: "not earlier"},
		{name: "duplicate", mods: []Module{par("a.ko"), par("a.ko")}, wantErr: "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Levels(tc.mods)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Levels error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Levels (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPreMainFromKmsg(t *testing.T) {
	kmsg := func(recs ...string) *recordReader { return &recordReader{recs: recs} }
	one := map[string]time.Duration{"upgrade-init: clock 0": 700 * time.Millisecond}
	for _, tc := range []struct {
		name    string
		r       *recordReader
		markers map[string]time.Duration
		want    time.Duration
		wantErr string
	}{
		{name: "ok", r: kmsg("6,900,5065000,-;Run /init as init process\n", "6,901,5065100,-;  with arguments:\n",
			"4,950,5900000,-;upgrade-init: clock 0\n"), markers: one, want: 135 * time.Millisecond},
		{name: "smallest of several markers", r: kmsg("6,2,1000,-;Run /init as init process\n",
			"4,3,9000,-;a\n", "4,4,9500,-;b\n", "4,5,12000,-;c\n"),
			markers: map[string]time.Duration{"a": 5 * time.Millisecond, "b": 6 * time.Millisecond, "c": 6500 * time.Microsecond},
			want:    2500 * time.Microsecond},
		{name: "continuation lines and junk skipped", r: kmsg("junk", "6,1,x,-;Run /init as init process\n",
			"6,2,1000,-;Run /init as init process\n", " SUBSYSTEM=x\n", "4,3,3000,-;a\n"),
			markers: map[string]time.Duration{"a": time.Millisecond}, want: time.Millisecond},
		{name: "wrapped", r: kmsg("4,3,3000,-;upgrade-init: clock 0\n"), markers: one, wantErr: "lacks"},
		{name: "clocks disagree", r: kmsg("6,2,1000,-;Run /init as init process\n", "4,3,3000,-;upgrade-init: clock 0\n"),
			markers: one, wantErr: "disagree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PreMainFromKmsg(tc.r, tc.markers)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("PreMainFromKmsg = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// recordReader returns one record per Read, as /dev/kmsg does, then EAGAIN.
type recordReader struct{ recs []string }

func (r *recordReader) Read(b []byte) (int, error) {
	if len(r.recs) == 0 {
		return 0, errAgain
	}
	n := copy(b, r.recs[0])
	r.recs = r.recs[1:]
	return n, nil
}

var errAgain = unix.EAGAIN
