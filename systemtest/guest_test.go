package systemtest

// guestLib is prepended to every script the guest runs (as root, by the
// image's systemtest-agent.service once multi-user.target is reached).
// Checks print "ST: ok ..." or "ST: FAIL ..."; the exit status is the
// number of failures.
const guestLib = `
fails=0
say() { echo "ST: $*"; }
ok() { say "ok $*"; }
fail() { say "FAIL $*"; fails=$((fails + 1)); }
# check DESC WANT GOT
check() { if [ "$2" = "$3" ]; then ok "$1: $3"; else fail "$1: want '$2', got '$3'"; fi; }
# has DESC NEEDLE TEXT: TEXT contains NEEDLE
has() { case "$3" in *"$2"*) ok "$1: has '$2'" ;; *) fail "$1: no '$2' in: $(echo "$3" | tr '\n' '|')" ;; esac; }
# hasnt DESC NEEDLE TEXT
hasnt() { case "$3" in *"$2"*) fail "$1: has '$2': $(echo "$3" | tr '\n' '|')" ;; *) ok "$1: no '$2'" ;; esac; }
# wait_until SECONDS DESC CMD...: polls CMD every 2 s.
wait_until() {
	n=$1 d=$2; shift 2
	while [ "$n" -gt 0 ]; do
		if "$@" >/dev/null 2>&1; then ok "$d"; return 0; fi
		sleep 2; n=$((n - 2))
	done
	fail "$d: not within the time"; return 1
}
val() { say "val $1=$2"; }
# wait_ready SECONDS: waits for the daemon's job to reach ready-to-reboot;
# a job that ends in an error fails at once.
wait_ready() {
	n=$1
	while [ "$n" -gt 0 ]; do
		st=$(upgradectl status 2>&1)
		case "$st" in
		*"state:        ready-to-reboot"*) ok "the upgrade is ready to reboot"; val ready-uptime "$(cut -d' ' -f1 /proc/uptime)"; return 0 ;;
		*"last error:"*) fail "the upgrade failed: $(echo "$st" | tr '\n' '|')"; return 1 ;;
		esac
		sleep 2; n=$((n - 2))
	done
	fail "no upgrade ready within $1 s: $(echo "$st" | tr '\n' '|')"; return 1
}
# mono UNIT PROPERTY: a unit's monotonic timestamp in seconds since boot.
mono() { echo "$(systemctl show -p "$2" --value "$1") 1000000" | awk '{printf "%.2f", $1 / $2}'; }
ptr() { sed -n "s/^$1=//p" /var/lib/securityd/bootptr; }
# kernel_is RELEASE: the running kernel is RELEASE and modules load from
# the running slot: overlay (the /etc overlay's, by modprobe) and
# virtio_net (udev's), each live as a module of this kernel.
kernel_is() {
	check "uname -r" "$1" "$(uname -r)"
	for mod in overlay virtio_net; do
		check "module $mod" live "$(cat /sys/module/$mod/initstate 2>&1)"
		has "module $mod's file" "/lib/modules/$1/" "$(modinfo -n $mod 2>&1)"
	done
}
status_of() { upgradectl status 2>&1; }
# The boot settles first (the agent starts after multi-user.target).
systemctl is-system-running --wait >/dev/null 2>&1
say "system $(systemctl is-system-running) at $(cut -d' ' -f1 /proc/uptime) s; current -> $(readlink /current)"
`
