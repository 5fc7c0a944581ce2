// Command clonebench compares clone.Clone with `cp -al` on a real tree:
//
//	go run ./bench/clonebench -tree DIR -runs 5
//
// Each run times `cp -al DIR X` and, separately, Clone of DIR into Y
// (manifest scanned once beforehand, outside the timing; the timed part
// includes the drift check, as a real clone does it). Clones are removed
// outside the timed part. It prints medians as BENCH lines for `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"laptop.org/upgrade/bench/internal/stats"
	"laptop.org/upgrade/clone"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

func main() {
	tree := flag.String("tree", "", "directory tree to clone (must be on the same filesystem as -work)")
	runs := flag.Int("runs", 5, "runs per method")
	work := flag.String("work", "", "scratch directory for the clones (default: next to -tree)")
	workers := flag.Int("workers", 0, "Clone workers (0 = GOMAXPROCS)")
	flag.Parse()
	if *tree == "" || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	src, err := filepath.Abs(*tree)
	check(err)
	if *work == "" {
		*work = filepath.Dir(src)
	}
	scratch, err := os.MkdirTemp(*work, ".clonebench-")
	check(err)
	defer os.RemoveAll(scratch)

	ctx := context.Background()
	m, err := manifest.Scan(ctx, src)
	check(err)
	sr, err := slotfs.Open(src)
	check(err)
	defer sr.Close()

	var cpT, cloneT []float64
	for i := 0; i < *runs; i++ {
		x := filepath.Join(scratch, "cp")
		t0 := time.Now()
		out, err := exec.Command("cp", "-al", src, x).CombinedOutput()
		cpT = append(cpT, time.Since(t0).Seconds())
		if err != nil {
			log.Fatalf("cp -al: %v: %s", err, out)
		}
		check(os.RemoveAll(x))

		y := filepath.Join(scratch, "clone")
		check(os.Mkdir(y, 0755))
		dr, err := slotfs.Open(y)
		check(err)
		t0 = time.Now()
		res, err := clone.Clone(ctx, sr, dr, m, clone.Options{Workers: *workers})
		cloneT = append(cloneT, time.Since(t0).Seconds())
		check(err)
		dr.Close()
		if len(res.Drift) > 0 {
			log.Printf("warning: %d drifted files (first %s: %s)", len(res.Drift), res.Drift[0].Path, res.Drift[0].Reason)
		}
		check(os.RemoveAll(y))
		log.Printf("run %d: cp -al %.3fs, clone %.3fs (%+v)", i+1, cpT[i], cloneT[i],
			clone.Result{Linked: res.Linked, Dirs: res.Dirs, Symlinks: res.Symlinks, Other: res.Other})
	}
	c, p := median(cloneT), median(cpT)
	fmt.Printf("BENCH clone_seconds %.4f s\n", c)
	fmt.Printf("BENCH cp_al_seconds %.4f s\n", p)
	fmt.Printf("BENCH clone_ratio_vs_cp_al %.3f x\n", c/p)
}

func median(xs []float64) float64 { return stats.Median(xs) }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
