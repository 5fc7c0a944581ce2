package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
)

// makeTree writes dir/v1, a synthetic tree of n entries (directories of 100
// files of 100 bytes), with every mtime at 1 s as in a deployed slot, once:
// dir/.done marks a finished tree.
func makeTree(dir string, n int) error {
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return nil
	}
	log.Printf("writing a tree of %d entries under %s", n, dir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	root := filepath.Join(dir, "v1")
	one := time.Unix(1, 0)
	var dirs []string
	buf := make([]byte, 100)
	i := 0
	for d := 0; i < n; d++ {
		dp := filepath.Join(root, fmt.Sprintf("d%05d", d))
		if err := os.MkdirAll(dp, 0755); err != nil {
			return err
		}
		dirs = append(dirs, dp)
		i++
		for f := 0; f < 100 && i < n; f++ {
			copy(buf, fmt.Sprintf("file %d of a synthetic tree\n", i))
			p := filepath.Join(dp, fmt.Sprintf("f%03d", f))
			if err := os.WriteFile(p, buf, 0644); err != nil {
				return err
			}
			if err := os.Chtimes(p, one, one); err != nil {
				return err
			}
			i++
		}
	}
	for _, d := range append(dirs, root) {
		if err := os.Chtimes(d, one, one); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, ".done"), nil, 0644)
}
