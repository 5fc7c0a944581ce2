// Command report turns a `make bench` run into bench/results.md and
// bench/bytes.png:
//
//	go run ./bench/report -logs build/bench/log -pairs build/bench/pairs -md bench/results.md -png bench/bytes.png
//
// -logs holds one file of `BENCH name value unit` lines per benchmark
// target; -pairs holds pairbench's JSON reports (every run of every system).
// The markdown has a table per pair with the peers beside us, the figures
// the issues name with their targets, and every other BENCH line. The plot
// (gnuplot, from Debian) shows bytes on the wire per system per pair.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/bench/internal/stats"
)

type line struct {
	Name  string
	Value float64
	Unit  string
	From  string
}

type system struct {
	Name    string
	Bytes   []int64
	Seconds []float64
	CPU     []float64
	RSSMiB  []float64
	Parts   map[string][]float64
	Note    string
}

type pairReport struct {
	Pair    string
	Runs    int
	Files   int
	Systems []*system
	Publish map[string]float64
	Growth  map[string]int64
}

// target is a figure the issues set a bound on.
type target struct {
	name, bound string
	ok          func(float64) bool
}

var targets = []target{
	{"clone_ratio_vs_cp_al", "≤ 1.0 (aim 0.7)", func(v float64) bool { return v <= 1.0 }},
	{"fetch_bytes_vs_rsync", "≤ 0.7", func(v float64) bool { return v <= 0.7 }},
	{"upgrade_ratio_vs_rsync", "≤ 0.8", func(v float64) bool { return v <= 0.8 }},
	{"bytes_vs_best_peer_go", "≤ 0.42", func(v float64) bool { return v <= 0.42 }},
	{"bytes_vs_best_peer_deb", "≤ 0.75", func(v float64) bool { return v <= 0.75 }},
	{"bytes_vs_ostree_delta_point", "≤ 0.6", func(v float64) bool { return v <= 0.6 }},
	{"bytes_vs_best_peer_point", "", nil},
	{"bytes_vs_best_peer_gopatch", "", nil},
	{"bytes_vs_ostree_delta_gopatch", "", nil},
	{"upgrade_time_vs_rsync_go", "≤ 0.5", func(v float64) bool { return v <= 0.5 }},
	{"upgrade_time_vs_ostree_go", "≤ 0.7", func(v float64) bool { return v <= 0.7 }},
	{"upgrade_time_vs_rsync_deb", "≤ 0.8", func(v float64) bool { return v <= 0.8 }},
	{"cpu_vs_rsync_go", "≤ 0.5", func(v float64) bool { return v <= 0.5 }},
	{"upgrade_time_vs_rsync_go_q25", "≤ 0.5", func(v float64) bool { return v <= 0.5 }},
	{"upgrade_time_vs_rsync_deb_q25", "≤ 0.8", func(v float64) bool { return v <= 0.8 }},
	{"cpu_vs_rsync_go_q25", "≤ 0.5", func(v float64) bool { return v <= 0.5 }},
	{"peak_rss_mib", "≤ 64 MiB", func(v float64) bool { return v <= 64 }},
	{"idle_rss_mib", "≤ 10 MiB", func(v float64) bool { return v <= 10 }},
	{"verify_vs_sha256sum", "≥ 1.5", func(v float64) bool { return v >= 1.5 }},
	{"dbus_getall_p99_ms", "≤ 5 ms", func(v float64) bool { return v <= 5 }},
	// Issue 15: answers during a job as fast as idle ones of the same
	// session, and nothing of a job left in the daemon.
	{"dbus_getall_p99_vs_idle", "≤ 1.25 x", func(v float64) bool { return v <= 1.25 }},
	{"idle_after_job_above_floor_mib", "≤ 0.5 MiB", func(v float64) bool { return v <= 0.5 }},
	// The same two with dbusbench's controls: the bare godbus service's
	// own p99 ratio under the lightest CPU load (SCHED_IDLE spinners), and
	// its RSS after serving as many calls as the daemon did.
	{"dbus_floor_p99_loaded_vs_idle", "", nil},
	{"dbus_getall_p99_vs_idle_over_floor", "≤ 1.0", func(v float64) bool { return v <= 1.0 }},
	{"idle_after_job_above_floor_after_calls_mib", "≤ 0.5 MiB", func(v float64) bool { return v <= 0.5 }},
	// Under TCG the absolute initrd time says little; the ratio to Debian's
	// initramfs-tools on the same kernel, disk and qemu flags replaces it.
	{"initrd_vs_initramfs_tools", "≤ 0.1", func(v float64) bool { return v <= 0.1 }},
	{"boot_to_init_vs_initramfs_tools", "≤ 0.3", func(v float64) bool { return v <= 0.3 }},
	{"gz_delta_ratio", "≤ 0.3", func(v float64) bool { return v <= 0.3 }},
	{"elf_delta_ratio", "≤ 0.7", func(v float64) bool { return v <= 0.7 }},
	{"initrd_ms", "", nil},
	{"initrd_native_ms", "≤ 50 ms (same steps, no VM)", func(v float64) bool { return v <= 50 }},
	{"upgrade_seconds", "", nil},
	{"scale_plan_us_per_entry_1m", "linear", nil},
	// The security service has no network (issue 15); cmd/deps_test.go
	// fails the build first, this shows it in the binary.
	{"binary_securityd_net_http_symbols", "0", func(v float64) bool { return v == 0 }},
	{"binary_securityd_stripped_mib", "", nil},
	{"binary_upgradectl_stripped_mib", "", nil},
}

func main() {
	logs := flag.String("logs", "build/bench/log", "directory of BENCH line files")
	pairs := flag.String("pairs", "build/bench/pairs", "directory of pairbench JSON reports")
	md := flag.String("md", "bench/results.md", "markdown output")
	png := flag.String("png", "bench/bytes.png", "plot output")
	manual := flag.String("manual", "bench/manual.md", "figures measured by hand, copied in after the tables")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("report: ")

	lines := readLines(*logs)
	reps := readPairs(*pairs)
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\nGenerated by `make bench` on %s (`go run ./bench/report`). ", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString("Every figure is a median of the runs shown; peers were measured in the same run, interleaved with ours, on the same data " +
		"and from the same starting state. The machine is shared by several engineers (2 cores): absolute times are noisy, ratios less so.\n\n")
	b.WriteString("## Figures with targets\n\n| figure | value | target | met |\n| --- | --- | --- | --- |\n")
	byName := map[string]line{}
	for _, l := range lines {
		byName[l.Name] = l
	}
	for _, t := range targets {
		l, ok := byName[t.name]
		if !ok {
			if t.name == "scale_plan_us_per_entry_1m" {
				fmt.Fprintf(&b, "| `%s` | not measured | %s | |\n", t.name, t.bound)
			}
			continue
		}
		met := ""
		if t.ok != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[t.ok(l.Value)]
		}
		fmt.Fprintf(&b, "| `%s` | %s %s | %s | %s |\n", t.name, num(l.Value), l.Unit, t.bound, met)
	}
	for _, r := range reps {
		writePair(&b, r)
	}
	b.WriteString("\n## Every BENCH line\n\n| name | value | unit | from |\n| --- | --- | --- | --- |\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", l.Name, num(l.Value), l.Unit, l.From)
	}
	if len(reps) > 0 {
		b.WriteString("\n![bytes on the wire per system and pair](bytes.png)\n")
	}
	if m, err := os.ReadFile(*manual); err == nil {
		// Its leading comment says what it is; the sections follow it.
		_, body, _ := strings.Cut(string(m), "-->\n\n")
		b.WriteString("\n" + body)
	}
	b.WriteString(notes)
	check(os.WriteFile(*md, []byte(b.String()), 0644))
	log.Printf("wrote %s (%d BENCH lines, %d pairs)", *md, len(lines), len(reps))
	if len(reps) > 0 {
		plot(reps, *png)
	}
}

func writePair(b *strings.Builder, r *pairReport) {
	fmt.Fprintf(b, "\n## Pair `%s` (%d files in the new tree, %d runs)\n\n", r.Pair, r.Files, r.Runs)
	b.WriteString("| system | bytes on the wire (MB) | update time (s) | client CPU (s) | peak RSS (MiB) | publish (s) | repository growth (MB) | how |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range r.Systems {
		parts := ""
		keys := make([]string, 0, len(s.Parts))
		for k := range s.Parts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts += fmt.Sprintf("; %s %.2fs", k, medianF(s.Parts[k]))
		}
		pub, growth := "", ""
		if v, ok := r.Publish[s.Name]; ok {
			pub = fmt.Sprintf("%.1f", v)
		}
		if v, ok := r.Growth[s.Name]; ok {
			growth = fmt.Sprintf("%.1f", float64(v)/1e6)
		}
		note := s.Note
		if s.Name == "ours" {
			note = "upgraded --once: clone + fetch + apply + verify"
		}
		cpu := ""
		if len(s.CPU) > 0 {
			cpu = fmt.Sprintf("%.2f", medianF(s.CPU))
		}
		fmt.Fprintf(b, "| %s | %.2f | %.2f | %s | %.1f | %s | %s | %s%s |\n", s.Name, float64(medianI(s.Bytes))/1e6,
			medianF(s.Seconds), cpu, medianF(s.RSSMiB), pub, growth, note, parts)
	}
}

// plot writes a grouped bar chart of bytes per system per pair.
func plot(reps []*pairReport, png string) {
	if _, err := exec.LookPath("gnuplot"); err != nil {
		log.Printf("gnuplot missing (scripts/deps.d/bench.txt): no %s", png)
		return
	}
	names := []string{"ours", "rsync", "ostree", "casync"}
	dir, err := os.MkdirTemp("", "report-")
	check(err)
	defer os.RemoveAll(dir)
	var dat strings.Builder
	dat.WriteString("pair " + strings.Join(names, " ") + "\n")
	for _, r := range reps {
		dat.WriteString(r.Pair)
		for _, n := range names {
			v := "NaN"
			for _, s := range r.Systems {
				if s.Name == n {
					v = fmt.Sprintf("%.2f", float64(medianI(s.Bytes))/1e6)
				}
			}
			dat.WriteString(" " + v)
		}
		dat.WriteString("\n")
	}
	dp := filepath.Join(dir, "bytes.dat")
	check(os.WriteFile(dp, []byte(dat.String()), 0644))
	abs, err := filepath.Abs(png)
	check(err)
	script := fmt.Sprintf(`set terminal pngcairo size 800,480 font "sans,11"
set output %q
set title "Bytes on the wire per upgrade (MB, median; lower is better)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right autotitle columnheader
set ylabel "MB"
set yrange [0:*]
set grid ytics
plot %q using 2:xtic(1), '' using 3, '' using 4, '' using 5
`, abs, dp)
	cmd := exec.Command("gnuplot")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("gnuplot: %v\n%s", err, out)
	}
	log.Printf("wrote %s", png)
}

func readLines(dir string) []line {
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	var out []line
	for _, f := range files {
		fh, err := os.Open(f)
		check(err)
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 3 || fs[0] != "BENCH" {
				continue
			}
			v, err := strconv.ParseFloat(fs[2], 64)
			if err != nil {
				continue
			}
			unit := ""
			if len(fs) > 3 {
				unit = fs[3]
			}
			out = append(out, line{fs[1], v, unit, strings.TrimSuffix(filepath.Base(f), ".txt")})
		}
		fh.Close()
	}
	return out
}

// notes say how the figures were taken (see also bench/README.md).
const notes = `
## How these were measured
- Ours is ` + "`upgraded --once`" + ` from a root provisioned at the old version (check, clone, download over HTTP on
  127.0.0.1, apply, verify, all durable); bytes are every HTTP body byte the counting server sent (signed index,
  manifest, delivery list included). The repository was published with ` + "`upgrade-publish add --best`" + `.
- rsync runs ` + "`cp -al`" + ` of a fresh copy of the old tree, then ` + "`rsync -azcH --delete`" + ` from an rsync daemon on
  127.0.0.1 (bytes: its "Total bytes received"). ` + "`-c`" + ` is needed because deployed trees have every mtime at 1 s;
  without it rsync skips changed files of unchanged size. It starts from a copy and not from our slot because rsync
  changes metadata of hard-linked files in place (chmod/chown on the inode the clone shares: OLPC's failure mode);
  in the first runs it rewrote the very tree it had been cloned from.
- ostree: archive repository with a static delta from the old commit; the client's bare repository holds the old
  commit; timed: ` + "`ostree pull`" + ` and ` + "`ostree checkout --require-hardlinks`" + `. casync: ` + "`casync extract --seed=OLD --hardlink=yes`" + `.
- Between runs nothing is deleted (old results go to a trash emptied at the next benchmark's start, then 90 s of
  waiting): this machine's ext4 has no journal and then skips inodes freed in the last 60-360 s on every file
  creation, which made creations 10-15x slower right after a large delete. Before every timed run, ` + "`sync`" + `
  (not timed), so that durable updates do not pay for dirty data others left.
- Client CPU is wait4's user+sys time of the client and its children (for rsync, cp -al and the rsync client; the
  servers are not counted). The ` + "`_q25`" + ` pairs ran every client in a cgroup capped at a quarter of one core
  (` + "`cpu.max`" + ` 25000 100000, or cgroup v1's ` + "`cpu.cfs_quota_us`" + `), the class of CPU the XO had.
- Peak RSS is wait4's ru_maxrss: resident anonymous memory plus the file-backed pages the process mapped (for us,
  the old executables a delta is applied against, and our own binary).
- Binary sizes (` + "`make bench-size`" + `, bench/binsize.sh): as ` + "`make build`" + ` builds them and stripped
  (` + "`-ldflags='-s -w'`" + `). Before issue 15 moved the D-Bus servers beside their services, securityd was
  13.76 MiB (9.55 stripped) with 1,088 net/http symbols and upgradectl 13.36 MiB (9.27 stripped): both linked the
  engine, fetch and net/http through dbusapi.
- D-Bus (` + "`bench/dbusbench`" + `): the real ` + "`upgraded`" + ` and ` + "`securityd`" + ` on a private bus upgrade a copy of the
  Go pair's root while a client calls GetAll every 10 ms; the control is 300 calls to the same daemon idle just
  before, in the same session. Since issue 15 the job runs in a worker process (` + "`upgrade-worker`" + `, a binary
  of its own, nice 10, ` + "`SCHED_BATCH`" + `): the daemon's peak and after-job RSS are the daemon's alone, the
  worker's peak is ` + "`worker_peak_rss_mib`" + ` (its ru_maxrss, as the daemon logs it). While the worker was the
  daemon's own binary in worker mode (21.2 MB), the daemon's idle RSS after a job was 15.7 MiB (anon 4.4, file
  11.3); the resident daemon now links neither the engine nor net/http nor TUF (10.8 MB) and the file-backed
  part, which is the text and read-only data it has touched, fell to 6.75 MiB. Before, with the job in the daemon's own
  process and its threads niced one by one, GetAll p99 during a job was 5.1-6.7 ms against 1.3-2.0 ms idle,
  and the idle RSS after a job 8.4 MiB against a floor (a bare godbus service) of 4.4 MiB.
  The floor has two controls of its own. Its GetAll p99 under one SCHED_IDLE spinner per core (pure CPU, the
  lightest background load there is) against idle is ` + "`dbus_floor_p99_loaded_vs_idle`" + `: what the machine's
  scheduler alone costs a Go D-Bus service's answers while anything runs (2.5-2.9x here), so the daemon's ratio
  during a job is also shown over it. And its RSS after serving 1,000 GetAll calls is
  ` + "`idle_rss_floor_after_calls_mib`" + ` (8.6-8.8 MiB, from 4.4: the collector's 4 MiB minimum heap goal), the fair
  floor for the daemon after a job, which has served as many.
- Memory of a job: an upgrade of the Go pair holds a live heap of 20-30 MiB (two manifests of ~15k entries, the
  delivery list, a frame of delta output, a pack's decoder window) but allocates hundreds of MiB on the way;
  with the default GOGC alone the heap grew to twice the live set and the resident set past 90 MiB. The
  engine's soft limit (14 MiB plus 500 bytes per manifest entry) has the collector run about twice as often
  instead. While the delta frame buffers were garbage on the heap the limit had to be 16 MiB and the collector
  ran ~60 times in a 2 s upgrade; with them mapped outside the heap (` + "`delta/framebuf.go`" + `) it runs ~17 times
  under 14 MiB at the same peak.

## Figures behind choices in the code
Code comments say why; the measurements behind them are kept here.
- Clone set (engine/cloneset.go): on the Go pair, linking the whole active slot made 15,000 links, 5,600 of them
  replaced or removed moments later by the apply; linking only what the target keeps makes 9,400 and removes none.
- One large-dictionary delta at a time (engine applier.big): decoding a 4 MiB frame of a new 28 MB executable
  touches 12-17 MB of the old one's mapped pages, and two at once doubled the resident set.
- Dropping a base's pages as a delta goes (engine dict.drop): without it, patching a 28 MB executable against its
  old version and a second base held up to 56 MB of mapped pages at once.
- Apply commit batches (engine/files.go): one syncfs took about 150 ms on this machine's busy shared disk.
- Fetch commit batches (fetch/commit.go): committing blob by blob, thousands of small blobs spent seconds in fsync.
- layout.Root.InstalledVersion reads the version file alone: decoding a 16k-entry manifest costs a daemon about 10 MiB
  of heap that it then keeps.
- The target manifest waits in staging during an upgrade rather than in the heap: 2-4 MiB for a 15k-file tree.
`

func readPairs(dir string) []*pairReport {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []*pairReport
	for _, f := range files {
		b, err := os.ReadFile(f)
		check(err)
		var r pairReport
		check(json.Unmarshal(b, &r))
		out = append(out, &r)
	}
	order := map[string]int{"go": 0, "deb": 1}
	sort.SliceStable(out, func(i, j int) bool {
		oi, ok1 := order[out[i].Pair]
		oj, ok2 := order[out[j].Pair]
		if !ok1 {
			oi = 9
		}
		if !ok2 {
			oj = 9
		}
		return oi < oj
	})
	return out
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func medianF(xs []float64) float64 { return stats.Median(xs) }

func medianI(xs []int64) int64 {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return int64(medianF(f))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
