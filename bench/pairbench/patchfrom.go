package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// patchFromPeer is the byte-level floor of a per-file delta tool: for
// every regular file of the new tree, nothing when the old tree has it
// unchanged at the same path, `zstd -19 --patch-from` of the old file when
// it changed, and `zstd -19` of the file when it is new. No index, no
// metadata: a lower bound on what any tool that diffs files by path sends.
// Computed once per data set (minutes of zstd -19) and cached.
type patchFromPeer struct {
	Bytes int64
	Files int // changed or new files
	Key   string
}

func patchFromBytes(work, oldTree, newTree, key string) int64 {
	cache := filepath.Join(work, "patchfrom.json")
	if b, err := os.ReadFile(cache); err == nil {
		var c patchFromPeer
		if json.Unmarshal(b, &c) == nil && c.Key == key {
			log.Printf("zstd --patch-from: cached")
			return c.Bytes
		}
	}
	var paths []string
	check(filepath.WalkDir(newTree, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	}))
	var total atomic.Int64
	var files atomic.Int64
	work1 := func(p string) {
		rel, _ := filepath.Rel(newTree, p)
		op := filepath.Join(oldTree, rel)
		args := []string{"-q", "-19", "-c", p}
		if fi, err := os.Lstat(op); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			if same(op, p) {
				return
			}
			args = append(args, "--patch-from="+op)
		}
		if fi, err := os.Stat(p); err == nil && fi.Size() == 0 {
			return
		}
		out, err := exec.Command("zstd", args...).Output()
		if err != nil {
			log.Fatalf("zstd %v: %v", args, err)
		}
		total.Add(int64(len(out)))
		files.Add(1)
	}
	ch := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				work1(p)
			}
		}()
	}
	for _, p := range paths {
		ch <- p
	}
	close(ch)
	wg.Wait()
	c := patchFromPeer{Bytes: total.Load(), Files: int(files.Load()), Key: key}
	log.Printf("zstd --patch-from: %d changed or new files, %s MB", c.Files, mb(c.Bytes))
	b, _ := json.Marshal(c)
	check(os.WriteFile(cache, b, 0644))
	return c.Bytes
}

// same reports whether two files have the same bytes.
func same(a, b string) bool {
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	return err == nil && bytes.Equal(x, y)
}
