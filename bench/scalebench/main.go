// Command scalebench shows how the cost of clone, plan and verify grows with
// the number of entries, on synthetic trees with 1 % of the files changed:
//
//	go run ./bench/scalebench -work DIR [-disk 1000,10000,100000] [-plan 1000,...,1000000] [-runs 5]
//
// Clone and verify need real trees (cached under -work: 4 KiB per file on
// disk); plan works on manifests only, so it is measured in memory up to a
// million entries even where a tree of that size does not fit the machine's
// time budget. For each size it prints the median time per entry and, for
// plan, the heap the two manifests and the plan hold per entry; then a
// least-squares slope (µs per entry) over the sizes, which is the cost of
// one more entry if growth is linear.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/bench/internal/stats"
	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

func main() {
	work := flag.String("work", "build/bench/scale", "cache of the synthetic trees")
	disk := flag.String("disk", "1000,10000,100000", "sizes measured on disk (clone, verify)")
	plan := flag.String("plan", "1000,10000,100000,1000000", "sizes measured in memory (plan)")
	runs := flag.Int("runs", 5, "runs per size (median)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("scalebench: ")
	ctx := context.Background()

	var ns []int
	var cloneT, verifyT []float64
	var cloneM, verifyM []float64
	for _, n := range sizes(*disk) {
		dir := filepath.Join(*work, strconv.Itoa(n))
		check(makeTree(dir, n))
		m, err := manifest.Scan(ctx, filepath.Join(dir, "v1"))
		check(err)
		c, v, cm, vm := diskRuns(ctx, dir, m, *runs)
		ns, cloneT, verifyT = append(ns, n), append(cloneT, c), append(verifyT, v)
		cloneM, verifyM = append(cloneM, cm), append(verifyM, vm)
		per("clone", n, c)
		per("verify", n, v)
		fmt.Printf("BENCH scale_clone_heap_bytes_per_entry_%s %.0f B\n", label(n), cm/float64(n))
		fmt.Printf("BENCH scale_verify_heap_bytes_per_entry_%s %.0f B\n", label(n), vm/float64(n))
	}
	if len(ns) > 1 {
		slope("clone", ns, cloneT)
		slope("verify", ns, verifyT)
	}

	var pns []int
	var planT []float64
	for _, n := range sizes(*plan) {
		t, heap := planRuns(n, *runs)
		pns, planT = append(pns, n), append(planT, t)
		per("plan", n, t)
		fmt.Printf("BENCH scale_plan_bytes_per_entry_%s %.0f B\n", label(n), heap/float64(n))
	}
	if len(pns) > 1 {
		slope("plan", pns, planT)
	}
}

func sizes(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			n, err := strconv.Atoi(f)
			check(err)
			out = append(out, n)
		}
	}
	return out
}

func label(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dm", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

func per(op string, n int, secs float64) {
	fmt.Printf("BENCH scale_%s_us_per_entry_%s %.3f us\n", op, label(n), secs/float64(n)*1e6)
}

// slope fits t = a + b·n by least squares and prints b in µs per entry.
func slope(op string, ns []int, ts []float64) {
	var sx, sy, sxx, sxy float64
	for i, n := range ns {
		x, y := float64(n), ts[i]
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	k := float64(len(ns))
	b := (k*sxy - sx*sy) / (k*sxx - sx*sx)
	fmt.Printf("BENCH scale_%s_slope_us_per_entry %.3f us\n", op, b*1e6)
}

// diskRuns clones the v1 tree into a fresh directory and verifies it, runs
// times; clones are removed outside the timing.
func diskRuns(ctx context.Context, dir string, m *manifest.Manifest, runs int) (cloneS, verifyS, cloneHeap, verifyHeap float64) {
	src, err := slotfs.Open(filepath.Join(dir, "v1"))
	check(err)
	defer src.Close()
	var cs, vs []float64
	for i := 0; i < runs; i++ {
		dst := filepath.Join(dir, "clone")
		check(os.RemoveAll(dst))
		check(os.Mkdir(dst, 0755))
		d, err := slotfs.Open(dst)
		check(err)
		pk := watchHeap()
		t0 := time.Now()
		_, err = clone.Clone(ctx, src, d, m, clone.Options{})
		cs = append(cs, time.Since(t0).Seconds())
		cloneHeap = max(cloneHeap, pk())
		check(err)
		pk = watchHeap()
		t0 = time.Now()
		check(verify.Slot(ctx, d, m, verify.Options{}))
		vs = append(vs, time.Since(t0).Seconds())
		verifyHeap = max(verifyHeap, pk())
		d.Close()
	}
	check(os.RemoveAll(filepath.Join(dir, "clone")))
	return median(cs), median(vs), cloneHeap, verifyHeap
}

// watchHeap samples the live heap every 2 ms until the returned function
// is called, which returns the peak above the heap at the start.
func watchHeap() func() float64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() float64 { metrics.Read(s); return float64(s[0].Value.Uint64()) }
	base := read()
	stop, done := make(chan struct{}), make(chan float64)
	go func() {
		peak := base
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				peak = max(peak, read())
			case <-stop:
				done <- max(peak, read()) - base
				return
			}
		}
	}()
	return func() float64 { close(stop); return <-done }
}

// planRuns plans v1 -> v2 for n synthetic entries in memory; returns the
// median time and the heap held by both manifests, the delivery list and
// the plan.
func planRuns(n, runs int) (float64, float64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m1, m2, dl := synthManifests(n)
	t := &engine.Target{Ref: repo.VersionRef{Version: 2}, Manifest: m2, Delivery: dl}
	var ts []float64
	var p *engine.Plan
	for i := 0; i < runs; i++ {
		p = nil
		runtime.GC()
		t0 := time.Now()
		var err error
		p, err = engine.MakePlan(m1, nil, t)
		ts = append(ts, time.Since(t0).Seconds())
		check(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if p.Counts[engine.Keep]+p.Counts[engine.Object] != countFiles(m2) {
		log.Fatalf("plan of %d entries: unexpected counts %v", n, p.Counts)
	}
	runtime.KeepAlive(m1)
	runtime.KeepAlive(p)
	return median(ts), float64(after.HeapAlloc) - float64(before.HeapAlloc)
}

// synthManifests makes the manifests of a tree of n entries (a directory
// per 100 files) and of its next version with every 100th file changed.
func synthManifests(n int) (*manifest.Manifest, *manifest.Manifest, *repo.Delivery) {
	m1, m2 := &manifest.Manifest{}, &manifest.Manifest{}
	dl := &repo.Delivery{Type: "delivery", Spec: repo.DeliverySpec, Version: 2}
	add := func(e manifest.Entry) {
		m1.Entries = append(m1.Entries, e)
		m2.Entries = append(m2.Entries, e)
	}
	i := 0
	for d := 0; i < n; d++ {
		add(manifest.Entry{Path: fmt.Sprintf("d%05d", d), Type: manifest.Dir, Mode: 0755})
		i++
		for f := 0; f < 100 && i < n; f++ {
			e := manifest.Entry{Path: fmt.Sprintf("d%05d/f%03d", d, f), Type: manifest.File, Mode: 0644, Size: 100,
				SHA256: digest.Of([]byte(strconv.Itoa(i)))}
			add(e)
			if i%100 == 0 {
				e2 := &m2.Entries[len(m2.Entries)-1]
				e2.SHA256 = digest.Of([]byte("v2 " + strconv.Itoa(i)))
				dl.Objects = append(dl.Objects, repo.BlobRef{SHA256: e2.SHA256, Size: 100, Stored: digest.Of(e2.SHA256[:]), StoredSize: 60})
			}
			i++
		}
	}
	dl.Sort()
	return m1, m2, dl
}

func countFiles(m *manifest.Manifest) int {
	k := 0
	for i := range m.Entries {
		if m.Entries[i].Type == manifest.File {
			k++
		}
	}
	return k
}

func median(xs []float64) float64 { return stats.Median(xs) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
