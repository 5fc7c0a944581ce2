package systemtest

import (
	"fmt"
	"testing"
)

// TestPowerCut is scenario 5 of issue 14: the timer's upgrade from v1 to v2
// runs in the real upgraded.service and qemu is killed (the disk opened
// with cache=none) as the daemon enters each phase that writes. The next
// boot runs slot a, which the security service verifies, with a pointer
// that never names the half-written slot; then the upgrade (the timer's
// again) completes and activates b.
func TestPowerCut(t *testing.T) {
	e := getEnv(t)
	e.serve(t, "repo-v2")
	for _, phase := range []string{"cloning", "downloading", "applying", "verifying", "activating"} {
		t.Run(phase, func(t *testing.T) {
			m := e.machine(t, 1)
			// The guest polls the daemon's State and reports each phase
			// reached, earlier ones included: a phase too short to be seen
			// (a 1.3 MB download) is cut at the first poll after it.
			e.bootOpts(t, "cut", m, `
order="checking cloning downloading applying verifying activating ready-to-reboot"
while :; do
	st=$(busctl --system get-property org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1 State | cut -d'"' -f2)
	case " $order " in *" $st "*)
		for p in $order; do say "reached $p"; [ "$p" = "$st" ] && break; done ;;
	esac
	[ "$st" = ready-to-reboot ] && break
	sleep 0.2
done
exit 0
`, "poweroff", opts{cutOn: fmt.Sprintf("ST: reached %s", phase)})
			e.boot(t, "after", m, `
cur=$(readlink /current)
has "the running slot $cur verifies" "t " "$(busctl --system call org.laptop.Security1 /org/laptop/Security1 org.laptop.Security1 Verify s $cur 2>&1)"
if [ "$cur" = a ]; then
	check "pointer good" a "$(ptr good)"
	wait_ready 1200
else
	# Cut after the security service had activated b: b boots on trial.
	check "pointer good" a "$(ptr good)"
	has "trial boot of b" 1 "$(ptr trial)"
	has "status" "running:      version 2 in slot b" "$(status_of)"
fi
check "pointer next" b "$(ptr next)"
has "the security service verifies slot b" "t 2" "$(busctl --system call org.laptop.Security1 /org/laptop/Security1 org.laptop.Security1 Verify s b 2>&1)"
exit $fails
`, "poweroff")
		})
	}
}
