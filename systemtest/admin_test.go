package systemtest

import "testing"

// TestAdminAndUser is scenario 2 of issue 14, on a v2 machine with v3
// available (its timer stopped, so the calls decide what runs). As root:
// upgradectl and the documented busctl and dbus-send lines
// (docs/dbus-api.md). As the local user pupil, logged in on tty1 by
// agetty (a real logind session on seat0, active): what the polkit policy
// allows an active user (check, upgrade) works and what needs an admin
// (rollback) is refused. The same user with no session gets NotAuthorized.
func TestAdminAndUser(t *testing.T) {
	e := getEnv(t)
	e.serve(t, "repo")
	m := e.machine(t, 2)
	e.boot(t, "v2", m, `
systemctl stop upgrade-check.timer
# settle DESC: waits until no job runs; a v3 that a job built and made
# next is withdrawn by root's upgradectl rollback, so slot a boots next.
settle() {
	wait_until 600 "$1" sh -c 'upgradectl status | grep -q -E "state: *(idle|ready-to-reboot)"'
	if upgradectl status | grep -q "state: *ready-to-reboot"; then
		has "upgradectl rollback withdraws the pending v3" "next boot: slot a (version 2)" "$(upgradectl rollback 2>&1)"
	fi
}
settle "the timer's job, if it fired, has ended"
upgradectl check >/tmp/check.out 2>&1; rc=$?
check "upgradectl check exit (an upgrade is available)" 0 "$rc"
# "version 3 is available (running 2)", with "and already built in slot
# b" if the timer's job had built it.
has "upgradectl check" "version 3 is available (running 2)" "$(cat /tmp/check.out)"
has "upgradectl status" "running:      version 2 in slot a" "$(upgradectl status)"
p=$(busctl --system get-property org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1 State NextBootSlot)
has "busctl get-property NextBootSlot" 's "a"' "$p"
has "busctl call Check" '"available_version" s "3"' "$(busctl --system call org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1 Check)"
has "dbus-send Properties.Get" "variant" "$(dbus-send --system --print-reply --dest=org.laptop.Upgrade1 /org/laptop/Upgrade1 org.freedesktop.DBus.Properties.Get string:org.laptop.Upgrade1 string:State)"
has "busctl call Upgrade" "u " "$(busctl --system call org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1 Upgrade 'sa{sv}' "" 0 2>&1)"
upgradectl cancel >/dev/null 2>&1
settle "the job busctl started has ended"
has "dbus-send UpgradeTo" "uint32" "$(dbus-send --system --print-reply --dest=org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1.UpgradeTo string:"" 2>&1)"
upgradectl cancel >/dev/null 2>&1
settle "the job dbus-send started has ended"

# No session: pupil through setpriv, outside any logind session.
ns=$(setpriv --reuid=pupil --regid=pupil --init-groups dbus-send --system --print-reply --dest=org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1.Check 2>&1)
has "no session: Check" "org.laptop.Upgrade1.Error.NotAuthorized" "$ns"
ns=$(setpriv --reuid=pupil --regid=pupil --init-groups dbus-send --system --print-reply --dest=org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1.UpgradeTo string:"" 2>&1)
has "no session: UpgradeTo" "org.laptop.Upgrade1.Error.NotAuthorized" "$ns"
has "no session: status still readable" "running:" "$(setpriv --reuid=pupil --regid=pupil --init-groups upgradectl status 2>&1)"

# An active session: agetty logs pupil in on tty1; the login shell runs the
# user's checks and logs out.
rm -f /home/pupil/user.out
cat >/home/pupil/.bash_profile <<'PROFILE'
if [ "$(tty)" = /dev/tty1 ] && [ ! -e ~/user.out ]; then
	{
	echo "session $(loginctl show-session "$XDG_SESSION_ID" -p Active -p Seat -p Class | tr '\n' ' ')"
	upgradectl check >/dev/null 2>&1; echo "check rc=$?"
	dbus-send --system --print-reply --dest=org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1.UpgradeTo string:"" 2>&1 | tr '\n' ' '; echo
	dbus-send --system --print-reply --dest=org.laptop.Upgrade1 /org/laptop/Upgrade1 org.laptop.Upgrade1.Rollback 2>&1 | tr '\n' ' '; echo
	} >~/user.out.tmp 2>&1
	mv ~/user.out.tmp ~/user.out
	logout
fi
PROFILE
chown pupil: /home/pupil/.bash_profile
mkdir -p /run/systemd/system/getty@tty1.service.d
printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin pupil --noclear %%I linux\n' >/run/systemd/system/getty@tty1.service.d/autologin.conf
systemctl daemon-reload
systemctl restart getty@tty1.service
wait_until 120 "pupil's session on tty1 ran its checks" test -e /home/pupil/user.out
out=$(cat /home/pupil/user.out)
echo "$out" | sed 's/^/ST: user /'
has "the session is active on seat0" "Active=yes" "$out"
has "the session's seat" "Seat=seat0" "$out"
has "active user: check allowed" "check rc=0" "$out"
has "active user: UpgradeTo allowed" "uint32" "$out"
has "active user: Rollback needs an admin" "org.laptop.Upgrade1.Error.NotAuthorized" "$out"
exit $fails
`, "poweroff")
}
