// Command busconf writes the private system-like bus configuration the
// tests use (internal/testbus) into a directory, for `make demo`. It prints
// the config file and the bus address, one per line.
package main

import (
	"fmt"
	"log"
	"os"

	"laptop.org/upgrade/internal/testbus"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: busconf DIR")
	}
	conf, addr, err := testbus.Prepare(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(conf)
	fmt.Println(addr)
}
