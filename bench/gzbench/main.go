// Command gzbench measures deflate-aware deltas (issue 18) on a pair of
// trees: for every gzip or zlib file that both trees hold at one path with
// different bytes, the size of `zstd -19 --patch-from` of the compressed
// files (what byte-level delta tools, ours before, pay) against what the
// publisher now stores, the smaller of a plain delta and a deflate-aware
// one. It prints BENCH lines; bench/data/gz-pair.sh builds the pair.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/delta/deflate"
)

type totals struct {
	files, puffed, exact       int
	gz, patchFrom, plain, ours int64
	contents                   int64 // delta of the decompressed contents: the floor
	puffTime, applyTime        time.Duration
}

func main() {
	oldDir := flag.String("old", "", "old tree")
	newDir := flag.String("new", "", "new tree")
	verbose := flag.Bool("v", false, "print every file")
	flag.Parse()
	if *oldDir == "" || *newDir == "" {
		log.Fatal("usage: gzbench -old DIR -new DIR")
	}
	zstd, err := exec.LookPath("zstd")
	if err != nil {
		log.Fatal("the zstd command is needed for the --patch-from figure")
	}
	var t totals
	err = filepath.WalkDir(*newDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(*newDir, p)
		oldPath := filepath.Join(*oldDir, rel)
		nb, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		ob, err := os.ReadFile(oldPath)
		if err != nil || bytes.Equal(ob, nb) || len(ob) == 0 || !deflate.Is(nb) || !deflate.Is(ob) {
			return nil
		}
		return t.add(zstd, rel, oldPath, p, ob, nb, *verbose)
	})
	if err != nil {
		log.Fatal(err)
	}
	if t.files == 0 || t.patchFrom == 0 {
		log.Fatal("no changed gzip files in the pair")
	}
	fmt.Printf("gzbench: %d changed gzip/zlib files, %d bytes; %d re-encoded exactly, %d deflate-aware deltas kept\n", t.files, t.gz, t.exact, t.puffed)
	fmt.Printf("BENCH gz_patch_from_bytes %d B\n", t.patchFrom)
	fmt.Printf("BENCH gz_plain_delta_bytes %d B\n", t.plain)
	fmt.Printf("BENCH gz_ours_bytes %d B\n", t.ours)
	fmt.Printf("BENCH gz_content_delta_bytes %d B\n", t.contents)
	fmt.Printf("BENCH gz_delta_ratio %.3f x\n", float64(t.ours)/float64(t.patchFrom))
	fmt.Printf("BENCH gz_apply_seconds %.3f s\n", t.applyTime.Seconds())
}

func (t *totals) add(zstd, rel, oldPath, newPath string, ob, nb []byte, verbose bool) error {
	pf, err := exec.Command(zstd, "-q", "-19", "--patch-from="+oldPath, "-c", newPath).Output()
	if err != nil {
		return fmt.Errorf("zstd --patch-from %s: %v", rel, err)
	}
	var plain, puffed bytes.Buffer
	if err := delta.Create(ob, bytes.NewReader(nb), &plain); err != nil {
		return err
	}
	ours := plain.Len()
	t.files++
	t.gz += int64(len(nb))
	t.patchFrom += int64(len(pf))
	t.plain += int64(plain.Len())
	if err := deflate.CreateDelta(ob, nb, &puffed); err == nil {
		t.exact++
		if puffed.Len() < ours {
			ours = puffed.Len()
			t.puffed++
			start := time.Now()
			var out bytes.Buffer
			if err := deflate.ApplyDelta(ob, bytes.NewReader(puffed.Bytes()), &out, int64(len(nb))); err != nil || !bytes.Equal(out.Bytes(), nb) {
				return fmt.Errorf("%s: the deflate-aware delta does not give the new file (%v)", rel, err)
			}
			t.applyTime += time.Since(start)
		}
	} else if verbose {
		fmt.Printf("%s: %v\n", rel, err)
	}
	t.ours += int64(ours)
	if oc, nc, err := gunzip(ob), gunzip(nb), error(nil); oc != nil && nc != nil && len(oc) > 0 {
		var cd bytes.Buffer
		if err = delta.Create(oc, bytes.NewReader(nc), &cd); err == nil {
			t.contents += int64(cd.Len())
		}
	}
	if verbose {
		fmt.Printf("%-60s gz %7d patch-from %7d plain %7d deflate %7d\n", rel, len(nb), len(pf), plain.Len(), puffed.Len())
	}
	return nil
}

// gunzip returns a gzip file's contents (nil for zlib or a bad file).
func gunzip(b []byte) []byte {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil
	}
	return out
}
