package systemtest

import (
	"fmt"
	"strings"
	"testing"
)

// TestRollback is scenario 4 of issue 14: v1 upgrades to v2 by its timer
// and reboots into it (as in scenario 1); there the admin runs
// `upgradectl rollback` and reboots, and v1 runs again from slot a (on
// trial, then marked good) with
// the pointer, the daemon and the package database agreeing, while the
// admin's /etc edits (made on v1 and on v2) and the machine id stay. The
// rollback also returns to v1's kernel (issue 17): v2 runs on its newer
// kernel by kexec, v1 again on the firmware's, with no kexec.
func TestRollback(t *testing.T) {
	e := getEnv(t)
	e.serve(t, "repo-v2")
	m := e.machine(t, 1)
	pkg, v1, v2 := upgradedPackage(t, e)
	k1, k2 := e.release(t, 1), e.release(t, 2)
	mid := e.boot(t, "v1", m, upgradeFromV1(pkg, v1, k1), "reboot").value(t, "machine-id")

	e.boot(t, "v2", m, fmt.Sprintf(`
check "running slot" b "$(readlink /current)"
kernel_is %[3]s
check "pointer good" b "$(ptr good)"
check "%[1]s in the package db" '%[2]s' "$(dpkg-query -W -f '${Version}' %[1]s)"
echo "fd42:feed::10 edited-on-v2" >>/etc/hosts
out=$(upgradectl rollback 2>&1)
has "upgradectl rollback" "next boot: slot a (version 1)" "$out"
check "pointer next" a "$(ptr next)"
# a is no longer the last known good slot (b is), so it boots on trial
# (security.Service.Rollback) and is marked good once it completes.
check "pointer trial" 1 "$(ptr trial)"
has "status next boot" "next boot:    slot a (version 1)" "$(status_of)"
exit $fails
`, pkg, v2, k2), "reboot")

	last := e.boot(t, "rollback", m, fmt.Sprintf(`
check "running slot" a "$(readlink /current)"
kernel_is %[4]s
check "pointer next" a "$(ptr next)"
check "pointer good" a "$(ptr good)"
check "pointer trial" 0 "$(ptr trial)"
st=$(status_of)
echo "$st" | sed 's/^/ST: status /'
has "status running" "running:      version 1 in slot a" "$st"
has "status next boot" "next boot:    slot a (version 1)" "$st"
check "package db" /a/var/lib/dpkg "$(readlink -f /var/lib/dpkg)"
check "%[1]s in the package db" '%[2]s' "$(dpkg-query -W -f '${Version}' %[1]s)"
hasnt "v1's /etc/issue" "osimage v2" "$(cat /etc/issue)"
check "machine id" %[3]s "$(cat /etc/machine-id)"
check "admin's file" "admin's motd" "$(cat /etc/motd)"
has "admin's edit on v1" "adminhost" "$(cat /etc/hosts)"
has "admin's edit on v2" "edited-on-v2" "$(cat /etc/hosts)"
# /etc edits live in the overlay's upper layer, so the slot never drifts.
check "Drift" "as 0" "$(busctl --system get-property org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1 Drift)"
exit $fails
`, pkg, v1, mid, k1), "poweroff")
	if !strings.Contains(last.console, "upgrade-init: booting slot a") {
		t.Errorf("the initrd did not boot a\n%s", importantLines(last.console))
	}
	if strings.Contains(last.console, "switching by kexec") {
		t.Errorf("slot a carries the firmware's kernel, yet the initrd kexecd\n%s", importantLines(last.console))
	}
}
