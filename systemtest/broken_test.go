package systemtest

import (
	"fmt"
	"strings"
	"testing"
)

// triesConfigured is `tries` in the image's upgraded.conf: boots a new slot
// gets before the initrd falls back.
const triesConfigured = 2

// TestBrokenRelease is scenario 3 of issue 14. A machine at v2 upgrades to
// v3 (its timer, as in scenario 1), whose health check fails, so
// boot-complete.target is never reached. Each trial boot reboots as a
// person would; after the configured tries the initrd falls back to v2, the
// daemon reports BootFailure, and nothing is lost from the persistent
// directories.
func TestBrokenRelease(t *testing.T) {
	e := getEnv(t)
	e.serve(t, "repo")
	m := e.machine(t, 2)

	e.boot(t, "v2", m, `
check "running slot" a "$(readlink /current)"
echo "pupil's work" >/home/pupil/essay.txt && chown pupil: /home/pupil/essay.txt
echo "log line of v2" >/var/log/systemtest.log
echo "admin's edit" >/etc/motd
wait_ready 1200
check "pointer next" b "$(ptr next)"
check "pointer tries" `+fmt.Sprint(triesConfigured)+` "$(ptr tries)"
sync
exit $fails
`, "reboot")

	for try := 1; try <= triesConfigured; try++ {
		b := e.boot(t, fmt.Sprintf("v3-try%d", try), m, `
check "running slot" b "$(readlink /current)"
has "v3 runs" "osimage v3" "$(cat /current/etc/issue)"
check "the broken health check" failed "$(systemctl is-failed systemtest-broken.service)"
hasnt "boot-complete.target" "active" "$(systemctl is-active boot-complete.target | grep -x active)"
check "pointer good" a "$(ptr good)"
check "pointer trial" 1 "$(ptr trial)"
exit $fails
`, "reboot")
		want := fmt.Sprintf("upgrade-init: booting slot b (trial b: %d tries left)", triesConfigured-try)
		if !strings.Contains(b.console, want) {
			t.Errorf("try %d: no %q\n%s", try, want, importantLines(b.console))
		}
	}

	last := e.boot(t, "fallback", m, `
check "running slot" a "$(readlink /current)"
check "pointer next" a "$(ptr next)"
check "pointer good" a "$(ptr good)"
check "pointer failed" b "$(ptr failed)"
st=$(status_of)
echo "$st" | sed 's/^/ST: status /'
has "status running" "running:      version 2 in slot a" "$st"
has "BootFailure" "boot failure: slot b did not finish booting" "$st"
bf=$(busctl --system get-property org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1 BootFailure)
has "BootFailure property" "slot b did not finish booting within its tries" "$bf"
check "pupil's file" "pupil's work" "$(cat /home/pupil/essay.txt)"
check "its owner" pupil "$(stat -c %U /home/pupil/essay.txt)"
check "log" "log line of v2" "$(cat /var/log/systemtest.log)"
check "admin's edit" "admin's edit" "$(cat /etc/motd)"
check "package db" /a/var/lib/dpkg "$(readlink -f /var/lib/dpkg)"
check "boot-complete.target" active "$(systemctl is-active boot-complete.target)"
exit $fails
`, "poweroff")
	if !strings.Contains(last.console, "upgrade-init: booting slot a") {
		t.Errorf("fallback: the initrd did not boot a\n%s", importantLines(last.console))
	}
}
