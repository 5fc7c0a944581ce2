#!/usr/bin/env bash
# A piuparts-equivalent check of the packages built by scripts/deb/build.sh
# in a clean Debian 12 root (debootstrap minbase, cached under OUT/base):
#   1. the packages' dependencies are installed once and that root is
#      cached (OUT/deps-<hash of the Depends fields>), as piuparts does;
#   2. a copy of it is listed, the packages are installed with dpkg, and
#      the files are checked where their readers look for them: systemd
#      (systemd-analyze verify finds the units by name; cat-config lists
#      the tmpfiles.d entry), dbus-daemon (a system bus started from
#      Debian's own system.conf lists the services as activatable and
#      loads the policies), polkitd (pkaction through a running polkitd
#      knows the actions), Sugar (the section sits in jarabe's ext_path);
#   3. the packages are purged and the root must list exactly as before.
# Runs in a private mount namespace (a /proc for the chroot). No grep -q in
# a pipe: under pipefail the writer's SIGPIPE would fail the check.
# usage: scripts/deb/test.sh OUT
set -euo pipefail
out=$(realpath -m "$1")
if [ -z "${DEBTEST_NS:-}" ]; then
	exec env DEBTEST_NS=1 unshare -m --propagation private "$0" "$@"
fi
pkgs=(laptop-upgrade laptop-upgrade-publisher sugar-cpsection-systemupdate)
debs=() indebs=() # on the host; as the chroot sees them
for p in "${pkgs[@]}"; do debs+=("$(ls "$out"/src/"$p"_*.deb)"); indebs+=("/tmp/debs/$(basename "${debs[-1]}")"); done
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
base=$out/base
work=$out/root
say() { echo "debtest: $*"; }
in_root() { chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "${@:2}"; }
with_proc() { mountpoint -q "$1/proc" || mount -t proc proc "$1/proc"; }

if [ ! -e "$base/.base-done" ]; then
	say "debootstrap minbase bookworm from $mirror (once)"
	rm -rf "$base"
	debootstrap --variant=minbase bookworm "$base" "$mirror" >"$out/debootstrap.log" 2>&1 || { tail "$out/debootstrap.log"; exit 1; }
	touch "$base/.base-done"
fi

# The dependencies (and the readers the checks need: dbus, polkitd and
# systemd are recommended) in a cached root, keyed by the fields.
key=$(for d in "${debs[@]}"; do dpkg-deb -f "$d" Depends Recommends; done | sha256sum | cut -c1-12)
deps=$out/deps-$key
if [ ! -e "$deps/.deps-done" ]; then
	say "installing the dependencies into $deps (once per dependency set)"
	rm -rf "$out"/deps-*
	cp -a "$base" "$deps"
	with_proc "$deps"
	mkdir -p "$deps/tmp/debs" && cp "${debs[@]}" "$deps/tmp/debs/"
	in_root "$deps" apt-get -q update >/dev/null
	in_root "$deps" apt-get -q install -y --no-install-recommends polkitd systemd "${indebs[@]}" >"$out/deps.log" 2>&1 || { tail -20 "$out/deps.log"; exit 1; }
	in_root "$deps" dpkg --purge "${pkgs[@]}" >>"$out/deps.log"
	in_root "$deps" apt-get clean
	rm -rf "$deps/tmp/debs"
	umount "$deps/proc"
	touch "$deps/.deps-done"
fi

rm -rf "$work"
cp -a "$deps" "$work"
with_proc "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
listing() {
	in_root "$work" find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /run \
		-o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/log \) -prune -o -print | sort
}
listing >"$out/before.txt"

say "install"
mkdir -p "$work/tmp/debs" && cp "${debs[@]}" "$work/tmp/debs/"
in_root "$work" dpkg -i "${indebs[@]}" >"$out/install.log" 2>&1 ||
	{ cat "$out/install.log"; exit 1; }

say "systemd reads the units and tmpfiles.d"
test -d "$work/var/lib/upgrade/staging" # systemd-tmpfiles ran from the postinst
in_root "$work" systemd-analyze verify --man=no upgraded.service securityd.service upgrade-check.timer \
	upgrade-boot-complete.service upgrade-publish-resign@stable.timer 2>&1 | tee "$out/verify.log"
test ! -s "$out/verify.log"
in_root "$work" systemd-analyze cat-config tmpfiles.d | grep '^# /usr/lib/tmpfiles.d/laptop-upgrade.conf$' >/dev/null
test -L "$work/etc/systemd/system/timers.target.wants/upgrade-check.timer"

say "dbus-daemon reads the policies and the activation files"
mkdir -p "$work/run/dbus"
in_root "$work" dbus-daemon --system --fork --print-pid=3 3>"$out/bus.pid"
pids+=("$(cat "$out/bus.pid")")
names=$(in_root "$work" dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.ListActivatableNames)
for n in org.laptop.Upgrade1 org.laptop.Security1; do grep -q "\"$n\"" <<<"$names" || { echo "not activatable: $n"; exit 1; }; done
# The policies are loaded: Debian's system.conf lets nobody own a name,
# root included; ours let root own the two names, and still not nobody.
for n in org.laptop.Upgrade1 org.laptop.Security1; do
	in_root "$work" dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus.RequestName string:$n uint32:4 | grep 'uint32 1' >/dev/null || { echo "root may not own $n: policy not read"; exit 1; }
	if in_root "$work" setpriv --reuid=65534 --regid=65534 --clear-groups dbus-send --system --print-reply \
		--dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.RequestName string:$n uint32:4 >/dev/null 2>&1; then
		echo "nobody may own $n"; exit 1
	fi
done

say "polkitd reads the actions"
chroot "$work" /usr/lib/polkit-1/polkitd --no-debug >"$out/polkitd.log" 2>&1 &
pids+=($!)
ok=
for _ in $(seq 50); do
	if in_root "$work" pkaction --action-id org.laptop.upgrade.upgrade >/dev/null 2>&1; then ok=1; break; fi
	sleep 0.2
done
[ -n "$ok" ] || { echo "pkaction does not know org.laptop.upgrade.upgrade"; cat "$out/polkitd.log"; exit 1; }
cleanup; pids=()

say "Sugar finds the section"
in_root "$work" python3 -c 'import os; from jarabe import config; p = os.path.join(config.ext_path, "cpsection", "systemupdate", "__init__.py"); assert os.path.exists(p), p'

say "purge"
in_root "$work" dpkg --purge "${pkgs[@]}" >>"$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
rm -rf "$work/tmp/debs"
listing >"$out/after.txt"
if ! diff -u "$out/before.txt" "$out/after.txt"; then
	echo "debtest: files left behind after purge (or removed)"; exit 1
fi
umount "$work/proc"
say "ok"
