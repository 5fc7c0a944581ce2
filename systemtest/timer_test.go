package systemtest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTimer is scenario 1 of issue 14. The v1 disk boots; the shipped
// upgrade-check.timer (a drop-in only shortens its schedule) starts the
// upgrade, which downloads v2 from the host over the IPv6-only network;
// meanwhile an admin edits /etc. The guest reboots into v2 on trial,
// boot-complete.target is reached and the slot is marked good; then
// `upgradectl status`, the boot pointer and History agree, the admin's
// edits and the machine id survived, a file both sides changed follows
// docs/state.md (the admin's copy wins), the package database describes
// the running slot, and the daemon running is v2's build. v2 carries a
// newer kernel than v1 (issue 17): the machine's firmware still loads v1's,
// the initrd kexecs v2's, and v2 runs on it with its own modules.
func TestTimer(t *testing.T) {
	timerScenario(t, getEnv(t))
}

// timerScenario runs scenario 1 and returns its figures for make bench-os
// (TestOSBench), in seconds of the guest's clock where the guest measures,
// else of the host's.
func timerScenario(t *testing.T, e env) osFigures {
	e.serve(t, "repo-v2")
	m := e.machine(t, 1)
	pkg, v1, v2 := upgradedPackage(t, e)
	k1, k2 := e.release(t, 1), e.release(t, 2)
	// make image builds the project anew for v2 (another -ldflags): the
	// updater must upgrade itself.
	upgradedV1, upgradedV2 := sha256File(t, filepath.Join(e.image, "bin-v1/upgraded")), sha256File(t, filepath.Join(e.image, "bin-v2/upgraded"))
	if upgradedV1 == upgradedV2 {
		t.Fatal("v1 and v2 carry the same upgraded binary (make image builds each version's)")
	}

	first := e.boot(t, "v1", m, upgradeFromV1(pkg, v1, k1), "reboot")
	mid := first.value(t, "machine-id")
	if len(mid) != 32 {
		t.Fatalf("machine id %q", mid)
	}
	if !strings.Contains(first.console, "upgrade-init: booting slot a") {
		t.Errorf("first boot: no initrd line for slot a\n%s", importantLines(first.console))
	}
	if strings.Contains(first.console, "switching by kexec") {
		t.Errorf("first boot: slot a carries the firmware's kernel, yet the initrd kexecd\n%s", importantLines(first.console))
	}

	second := e.boot(t, "v2", m, fmt.Sprintf(`
check "running slot" b "$(readlink /current)"
kernel_is %[5]s
check "boot-complete.target" active "$(systemctl is-active boot-complete.target)"
check "upgrade-boot-complete.service" active "$(systemctl is-active upgrade-boot-complete.service)"
check "pointer next" b "$(ptr next)"
check "pointer good" b "$(ptr good)"
check "pointer trial" 0 "$(ptr trial)"
st=$(status_of)
echo "$st" | sed 's/^/ST: status /'
has "status running" "running:      version 2 in slot b" "$st"
has "status next boot" "next boot:    slot b (version 2)" "$st"
hist=$(upgradectl history)
echo "$hist" | sed 's/^/ST: history /'
has "history" "version 2 " "$(echo "$hist" | tail -n 1)"
has "history ok" " ok" "$(echo "$hist" | tail -n 1)"
check "machine id" %[1]s "$(cat /etc/machine-id)"
check "admin's file" "admin's motd" "$(cat /etc/motd)"
check "vendor's new copy of the admin's file" "vendor motd of v2" "$(cat /current/etc/motd)"
has "admin's edit" "adminhost" "$(cat /etc/hosts)"
has "vendor's change the admin never touched" "osimage v2" "$(cat /etc/issue)"
check "package db" /b/var/lib/dpkg "$(readlink -f /var/lib/dpkg)"
check "%[2]s in the package db" '%[3]s' "$(dpkg-query -W -f '${Version}' %[2]s)"
wait_until 300 "the daemon is idle" sh -c 'upgradectl status | grep -q "state: *idle"'
# A status call (re)activates the daemon; then its pid, binary and memory.
upgradectl status >/dev/null
pid=$(systemctl show -p MainPID --value upgraded.service)
check "the running upgraded is v2's build" %[4]s "$(sha256sum </proc/$pid/exe | cut -d' ' -f1)"
check "/usr/bin/upgraded is v2's build" %[4]s "$(sha256sum </usr/bin/upgraded | cut -d' ' -f1)"
val good "$(mono upgrade-boot-complete.service ActiveEnterTimestampMonotonic)"
val daemon-ready "$(mono upgraded.service ActiveEnterTimestampMonotonic)"
val daemon-rss-kib "$(awk '/^VmRSS:/{print $2}' /proc/$pid/status)"
exit $fails
`, mid, pkg, v2, upgradedV2, k2), "poweroff")
	if !strings.Contains(second.console, "upgrade-init: booting slot b (trial") {
		t.Errorf("second boot: the initrd did not boot b on trial\n%s", importantLines(second.console))
	}
	wantConsole(t, "second boot", second.console,
		"upgrade-init: slot b carries kernel "+k2+", running "+k1+": switching by kexec",
		"upgrade-init: running slot b's kernel "+k2)
	// Both boots start from the same firmware kernel; the second kexecs
	// v2's, whose clock (the guest's figures) starts later by the switch.
	kswitch := (second.preClock - first.preClock).Seconds()
	return osFigures{
		"upgrade":        num(t, first.value(t, "ready-uptime")) - num(t, first.value(t, "timer-start")),
		"shutdown":       first.shutdown.Seconds(),
		"reboot-to-good": first.shutdown.Seconds() + kswitch + num(t, second.value(t, "good")),
		"boot-to-ready":  kswitch + num(t, second.value(t, "daemon-ready")),
		"rss-mib":        num(t, second.value(t, "daemon-rss-kib")) / 1024,
		"kernel-switch":  kswitch,
	}
}

// upgradeFromV1 is the script of a v1 machine's first boot: it checks the
// state it starts from (v1's kernel k1 and package pkg at v1), makes an
// admin's /etc edits, prints the machine id, and waits for the upgrade the
// timer starts, up to ready-to-reboot.
func upgradeFromV1(pkg, v1, k1 string) string {
	return fmt.Sprintf(`
check "running slot" a "$(readlink /current)"
kernel_is %[3]s
check "package db" /a/var/lib/dpkg "$(readlink -f /var/lib/dpkg)"
check "%[1]s in the package db" '%[2]s' "$(dpkg-query -W -f '${Version}' %[1]s)"
has "/etc is the persistent overlay" "overlay" "$(findmnt -n -o FSTYPE /etc)"
hasnt "IPv4 address" "inet " "$(ip -4 -o addr show scope global)"
wait_until 120 "an IPv6 address by SLAAC (fec0::/64 is site scope)" sh -c 'ip -6 -o addr show | grep -q "inet6 fec0::"'
val machine-id "$(cat /etc/machine-id)"
echo "admin's motd" >/etc/motd
echo "fd42:feed::9 adminhost" >>/etc/hosts
# The timer, not this script, starts the upgrade.
wait_ready 1200
has "upgrade-check.service ran" "upgradectl upgrade --background" "$(journalctl -b -u upgrade-check.service -o cat; systemctl show -p ExecMain upgrade-check.service; systemctl cat upgrade-check.service)"
check "timer triggered it" "upgrade-check.timer" "$(systemctl show -p TriggeredBy --value upgrade-check.service)"
hasnt "upgrade-check.service failed" "failed" "$(systemctl is-failed upgrade-check.service)"
check "pointer next" b "$(ptr next)"
check "pointer trial" 1 "$(ptr trial)"
status_of | sed 's/^/ST: status /'
val timer-start "$(mono upgrade-check.service ExecMainStartTimestampMonotonic)"
exit $fails
`, pkg, v1, k1)
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("the guest printed %q, not a number", s)
	}
	return f
}

// upgradedPackage names a package v2 upgrades and its versions in v1 and v2
// (from the lists make image writes).
func upgradedPackage(t *testing.T, e env) (pkg, v1, v2 string) {
	t.Helper()
	versions := func(n int) map[string]string {
		b, err := os.ReadFile(filepath.Join(e.image, fmt.Sprintf("packages-v%d.txt", n)))
		must(t, err)
		m := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if name, ver, ok := strings.Cut(l, "\t"); ok {
				m[name] = ver
			}
		}
		return m
	}
	old, cur := versions(1), versions(2)
	for _, p := range []string{"libssl3:amd64", "zlib1g:amd64", "perl-base"} {
		if old[p] != "" && cur[p] != "" && old[p] != cur[p] {
			return p, old[p], cur[p]
		}
	}
	for p, v := range cur {
		if old[p] != "" && old[p] != v {
			return p, old[p], v
		}
	}
	t.Fatal("v2 upgrades no package of v1 (make image checks this)")
	return
}

// wantConsole fails for each line the console lacks.
func wantConsole(t *testing.T, what, console string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(console, l) {
			t.Errorf("%s: no %q on the console\n%s", what, l, importantLines(console))
		}
	}
}
