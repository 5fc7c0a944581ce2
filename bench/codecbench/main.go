// Command codecbench measures the delta codecs of issue 18 on a pair of
// trees: for every file that both trees hold at one path with different
// bytes and that a codec applies to (gzip/zlib files, x86-64 ELF files),
// the size of `zstd -19 --patch-from` of the files (what byte-level delta
// tools, ours before, pay) against what the publisher stores
// (publish.DeltaOf: a plain delta unless a codec's is smaller; for ELF
// files, the encoded-file and the address-map delta). It prints BENCH lines;
// bench/data/codec-pair.sh builds the pair.
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
	"laptop.org/upgrade/delta/elf"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
)

// kind is one codec's tally.
type kind struct {
	name                         string
	files, kept                  int
	size, patchFrom, plain, ours int64
	floor                        int64 // gz: delta of the decompressed contents
	apply                        time.Duration
	by                           map[string]int // files per codec kept
}

func main() {
	oldDir := flag.String("old", "", "old tree")
	newDir := flag.String("new", "", "new tree")
	verbose := flag.Bool("v", false, "print every file")
	suffix := flag.String("suffix", "", "appended to every BENCH name (a second pair's figures)")
	best := flag.Bool("best", true, "our deltas as `upgrade-publish add --best` makes them (the zstd command for large contents), as make bench publishes")
	flag.Parse()
	if *oldDir == "" || *newDir == "" {
		log.Fatal("usage: codecbench -old DIR -new DIR")
	}
	zstd, err := exec.LookPath("zstd")
	if err != nil {
		log.Fatal("the zstd command is needed for the --patch-from figure")
	}
	cli := ""
	if *best {
		cli = zstd
	}
	gz, ex := &kind{name: "gz", by: map[string]int{}}, &kind{name: "elf", by: map[string]int{}}
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
		if err != nil || bytes.Equal(ob, nb) || len(ob) == 0 {
			return nil
		}
		switch {
		case deflate.Is(nb) && deflate.Is(ob):
			return gz.add(zstd, cli, rel, oldPath, p, ob, nb, *verbose)
		case elf.Is(nb) && elf.Is(ob):
			return ex.add(zstd, cli, rel, oldPath, p, ob, nb, *verbose)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	found := 0
	for _, k := range []*kind{gz, ex} {
		if k.files == 0 {
			log.Printf("no changed %s files in the pair", k.name)
			continue
		}
		found++
		k.report(*suffix)
	}
	if found == 0 {
		log.Fatal("no changed file a codec applies to")
	}
}

// applyFor is each codec's apply (timed and checked on every kept delta).
var applyFor = map[string]func(old []byte, d io.Reader, w io.Writer, maxOut int64) error{
	repo.CodecDeflate: deflate.ApplyDelta,
	repo.CodecELF:     elf.ApplyDelta,
	repo.CodecELFMap:  elf.ApplyMapDelta,
}

// add tallies one changed file: zstd -19 --patch-from, the Go encoder's
// plain delta, and what the publisher stores (publish.DeltaOf; with
// -best, as `upgrade-publish add --best` makes it).
func (k *kind) add(zstd, cli, rel, oldPath, newPath string, ob, nb []byte, verbose bool) error {
	pf, err := exec.Command(zstd, "-q", "-19", "--patch-from="+oldPath, "-c", newPath).Output()
	if err != nil {
		return fmt.Errorf("zstd --patch-from %s: %v", rel, err)
	}
	var plain bytes.Buffer
	if err := delta.Create(ob, bytes.NewReader(nb), &plain); err != nil {
		return err
	}
	d, codec, err := publish.DeltaOf(cli, ob, nb)
	if err != nil {
		return fmt.Errorf("%s: %v", rel, err)
	}
	k.files++
	k.size += int64(len(nb))
	k.patchFrom += int64(len(pf))
	k.plain += int64(plain.Len())
	k.ours += int64(len(d))
	if apply := applyFor[codec]; apply != nil {
		k.kept++
		k.by[codec]++
		start := time.Now()
		var out bytes.Buffer
		if err := apply(ob, bytes.NewReader(d), &out, int64(len(nb))); err != nil || !bytes.Equal(out.Bytes(), nb) {
			return fmt.Errorf("%s: the %s delta does not give the new file (%v)", rel, codec, err)
		}
		k.apply += time.Since(start)
	}
	if k.name == "gz" {
		if oc, nc := gunzip(ob), gunzip(nb); len(oc) > 0 && nc != nil {
			var cd bytes.Buffer
			if delta.Create(oc, bytes.NewReader(nc), &cd) == nil {
				k.floor += int64(cd.Len())
			}
		}
	}
	if verbose {
		fmt.Printf("%-60s %8d patch-from %8d plain %8d ours %8d %s\n", rel, len(nb), len(pf), plain.Len(), len(d), codec)
	}
	return nil
}

func (k *kind) report(suffix string) {
	fmt.Printf("codecbench: %d changed %s files, %d bytes; a codec's delta kept for %d %v\n", k.files, k.name, k.size, k.kept, k.by)
	line := func(name string, v any, unit string) {
		fmt.Printf("BENCH %s_%s%s %v %s\n", k.name, name, suffix, v, unit)
	}
	line("patch_from_bytes", k.patchFrom, "B")
	line("plain_delta_bytes", k.plain, "B")
	line("ours_bytes", k.ours, "B")
	if k.floor > 0 {
		line("content_delta_bytes", k.floor, "B")
	}
	line("delta_ratio", fmt.Sprintf("%.3f", float64(k.ours)/float64(k.patchFrom)), "x")
	line("apply_seconds", fmt.Sprintf("%.3f", k.apply.Seconds()), "s")
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
