// Command mktree writes version N of the sample OS tree (for `make demo`).
package main

import (
	"log"
	"os"
	"strconv"

	"laptop.org/upgrade/internal/testtree"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: mktree VERSION DIR")
	}
	v, err := strconv.Atoi(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	if err := testtree.Build(os.Args[2], v); err != nil {
		log.Fatal(err)
	}
}
