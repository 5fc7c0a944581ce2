// Command init is PID 1 of the upgrade initramfs (make initrd). All of the
// work is in package initrd; this stays a one-liner so that the binary built
// into the image and the code the tests run are the same.
package main

import "laptop.org/upgrade/initrd"

func main() { initrd.Main() }
