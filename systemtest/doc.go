// Package systemtest runs the whole product as a laptop would (issue 14):
// the OS that `make image` builds (Debian 12, systemd as PID 1, the shipped
// units) boots under qemu through the project's initrd on Debian's cloud
// kernel, upgrades itself from a repository the host serves on [::1] over
// an IPv6-only guest network, and reboots. Each boot runs a script the host
// writes onto a second disk; the guest's agent runs it and the script judges
// from inside the guest, printing "ST: ok ..." or "ST: FAIL ..." lines on the
// serial console, which the host collects.
//
// Everything lives in the tests (make systemtest, UPGRADE_SYSTEMTEST=1).
package systemtest
