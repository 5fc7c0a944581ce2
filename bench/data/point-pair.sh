#!/usr/bin/env bash
# Builds the point-release pair once (issue 18): OUT/old = a bookworm
# minbase root (debootstrap) with a server's worth of packages installed
# from the bookworm suite alone, as the last point release shipped them;
# OUT/new = the same root after `apt-get dist-upgrade` with
# bookworm-security and bookworm-updates added, the batch of security
# updates published since. Nearly every change is a rebuilt package:
# ELF executables and libraries that moved code, gzip'd man pages and
# changelogs that changed a little. Cleaned as deb-pair.sh does (apt
# lists and caches, /dev, /proc, /sys, /run), every mtime 1 s.
set -euo pipefail
out=${1:?usage: point-pair.sh OUTDIR}
pkgs=${POINT_PAIR_PACKAGES:-"openssl python3 bind9-dnsutils rsyslog tzdata perl nginx cups-client
	libpam-modules ca-certificates curl libssh2-1 poppler-utils ghostscript imagemagick xz-utils zstd
	libexpat1 openssh-client git"}
[ -e "$out/.done" ] && exit 0
src=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$src" 2>/dev/null || true)
security=$(awk '/^URIs:/ && $2 ~ /security/ {print $2; exit}' "$src" 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}
mkdir -p "$out"
if [ ! -e "$out/base.done" ]; then # debootstrap takes minutes: keep it across failures below
	rm -rf "$out/base"
	debootstrap --variant=minbase bookworm "$out/base" "$mirror" >"$out/debootstrap.log" 2>&1 ||
		{ tail -20 "$out/debootstrap.log" >&2; exit 1; }
	touch "$out/base.done"
fi
# in_root ROOT CMD: CMD in a chroot, in a private mount namespace with its
# own /proc, so nothing is left mounted on any path.
in_root() {
	unshare -m --propagation private sh -c "
		mount -t proc proc '$1/proc' && mount --rbind /dev '$1/dev' &&
		cp /etc/resolv.conf '$1/etc/resolv.conf' &&
		chroot '$1' sh -c '$2'
	"
}
apt_get='DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o Dpkg::Options::=--force-confold'
if [ ! -e "$out/installed.done" ]; then
	rm -rf "$out/installed"
	cp -a "$out/base" "$out/installed"
	echo "deb $mirror bookworm main" >"$out/installed/etc/apt/sources.list"
	in_root "$out/installed" "apt-get update -qq && $apt_get install --no-install-recommends $(echo $pkgs)" \
		>"$out/install.log" 2>&1 || { tail -20 "$out/install.log" >&2; exit 1; }
	touch "$out/installed.done"
fi
rm -rf "$out/old" "$out/new"
cp -a "$out/installed" "$out/new"
cat >"$out/new/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
in_root "$out/new" "apt-get update -qq && $apt_get dist-upgrade" >"$out/upgrade.log" 2>&1 ||
	{ tail -20 "$out/upgrade.log" >&2; exit 1; }
in_root "$out/new" "dpkg-query -W" >"$out/versions.new"
in_root "$out/installed" "dpkg-query -W" >"$out/versions.old"
cp -a "$out/installed" "$out/old"
clean() { # ROOT
	rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb
	find "$1/dev" "$1/proc" "$1/sys" "$1/run" -mindepth 1 -delete 2>/dev/null || true
}
clean "$out/old"
clean "$out/new"
for d in "$out/old" "$out/new"; do
	find "$d" -exec touch -h -d @1 {} +
done
echo "point-pair: $(diff "$out/versions.old" "$out/versions.new" | grep -c '^>') packages upgraded" >&2
touch "$out/.done"
