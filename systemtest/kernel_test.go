package systemtest

import (
	"fmt"
	"strings"
	"testing"
)

// TestKernelPanic is issue 17's broken kernel: a v1 machine upgrades (its
// timer, as in scenario 1) to a version 3 that is v2 with an initrd whose
// /init cannot run, so its newer kernel panics at every boot (repo-kpanic;
// make image). Each trial boot pays its try in the firmware kernel's initrd,
// kexecs the new kernel, which panics, and the machine resets (qemu runs
// without -no-reboot: one run holds every boot). After the configured tries
// the initrd falls back to v1 on v1's kernel, with no kexec, and the daemon
// reports BootFailure.
func TestKernelPanic(t *testing.T) {
	e := getEnv(t)
	e.serve(t, "repo-kpanic")
	m := e.machine(t, 1)
	k1, k2 := e.release(t, 1), e.release(t, 2)

	e.boot(t, "v1", m, fmt.Sprintf(`
check "running slot" a "$(readlink /current)"
kernel_is %[1]s
wait_ready 1200
check "pointer next" b "$(ptr next)"
check "pointer trial" 1 "$(ptr trial)"
check "pointer tries" %[2]d "$(ptr tries)"
check "slot b carries the new kernel" vmlinuz-%[3]s "$(readlink /b/boot/vmlinuz)"
exit $fails
`, k1, triesConfigured, k2), "reboot")

	b := e.bootOpts(t, "tries-then-fallback", m, fmt.Sprintf(`
check "running slot" a "$(readlink /current)"
kernel_is %[1]s
check "pointer next" a "$(ptr next)"
check "pointer good" a "$(ptr good)"
check "pointer trial" 0 "$(ptr trial)"
check "pointer failed" b "$(ptr failed)"
st=$(status_of)
echo "$st" | sed 's/^/ST: status /'
has "status running" "running:      version 1 in slot a" "$st"
has "BootFailure" "boot failure: slot b did not finish booting" "$st"
check "package db" /a/var/lib/dpkg "$(readlink -f /var/lib/dpkg)"
check "boot-complete.target" active "$(systemctl is-active boot-complete.target)"
exit $fails
`, k1), "poweroff", opts{reboots: true})

	var want []string
	for try := 1; try <= triesConfigured; try++ {
		want = append(want, fmt.Sprintf("upgrade-init: booting slot b (trial b: %d tries left)", triesConfigured-try))
	}
	want = append(want, "upgrade-init: slot b carries kernel "+k2+", running "+k1+": switching by kexec",
		"Kernel panic - not syncing",
		"upgrade-init: booting slot a (trial b failed (no tries left): falling back to good a)")
	wantConsole(t, "tries and fallback", b.console, want...)
	// One kexec and one panic per try, none after the fallback.
	for _, l := range []string{"switching by kexec", "Kernel panic - not syncing"} {
		if n := strings.Count(b.console, l); n != triesConfigured {
			t.Errorf("%d times %q, want %d (one per try)\n%s", n, l, triesConfigured, importantLines(b.console))
		}
	}
}
