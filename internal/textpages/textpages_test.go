package textpages

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMapsLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want mapping
		ok   bool
	}{
		{"00400000-0086a000 r-xp 00000000 fe:00 10503908   /usr/lib/upgrade/upgraded",
			mapping{start: 0x400000, end: 0x86a000, perms: "r-xp", path: "/usr/lib/upgrade/upgraded"}, true},
		{"7f95c0a09000-7f95c0ae9000 rw-p 00000000 00:00 0 ", mapping{}, false}, // anonymous: no path
		{"00400000-0086a000 r-xp 00000000 fe:00 1 /opt/my dir/bin", mapping{start: 0x400000, end: 0x86a000, perms: "r-xp", path: "/opt/my dir/bin"}, true},
		{"0086a000-00400000 r--p 0 fe:00 1 /x", mapping{}, false}, // end before start
		{"zz-00400000 r--p 0 fe:00 1 /x", mapping{}, false},
		{"", mapping{}, false},
	} {
		got, ok := parseMapsLine(tc.line)
		if ok != tc.ok {
			t.Errorf("%q: ok %v, want %v", tc.line, ok, tc.ok)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(mapping{})); ok && diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.line, diff)
		}
	}
}

// The test binary's code pages leave its resident set, and it runs on:
// reclaimed (Release) or only unmapped (Trim).
func TestRelease(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func() (int64, error)
	}{{"Trim", Trim}, {"Release", Release}} {
		t.Run(tc.name, func(t *testing.T) {
			os.ReadFile("/proc/self/maps") // code runs: pages come back
			before := rssFileKiB(t)
			n, err := tc.f()
			if err != nil {
				t.Fatal(err)
			}
			after := rssFileKiB(t)
			if n == 0 || after >= before {
				t.Fatalf("advised %d bytes of mappings: file-backed resident set %d -> %d KiB", n, before, after)
			}
			t.Logf("advised %d KiB; RssFile %d -> %d KiB", n>>10, before, after)
		})
	}
}

func rssFileKiB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
