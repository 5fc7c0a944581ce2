// Package powercut proves invariant 3 of the design against real power
// loss: a VM (qemu, the project's initrd, Debian's kernel) runs the real
// `upgraded --once --activate` on a virtual disk opened with cache=none, the
// host kills qemu at a random moment, and the next boot through the initrd
// must choose a slot that verifies, with a pointer naming only slots that
// verify, and the next full run must finish and activate.
//
// Everything lives in the tests and in internal/guest (the slot's init). The
// package has no code of its own: a library here would tempt production code
// to depend on test machinery.
package powercut
