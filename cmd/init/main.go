// Command init is PID 1 of the upgrade initramfs (make initrd). All of the
// work is in package initrd; this stays a one-liner so that the binary built
// into the image and the code the tests run are the same.
//
// It takes no flags, so it does without the command-line library of the
// other binaries (cobra would add 1.1 MB, a third, to every initrd); only
// --version is answered, and never as PID 1, where the kernel's arguments
// are not ours to interpret.
package main

import (
	"fmt"
	"os"

	"laptop.org/upgrade/initrd"
	"laptop.org/upgrade/version"
)

func main() {
	if os.Getpid() != 1 && len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println("init", version.Version)
		return
	}
	initrd.Main()
}
