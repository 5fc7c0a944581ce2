#!/usr/bin/env bash
# Builds the Debian pair once: OUT/old = a bookworm minbase root made by
# debootstrap, OUT/new = the same root after `apt-get install` of a few
# packages in a chroot (a typical small update: a handful of changed files,
# ~1-2k new ones). apt's lists and caches are cleaned, /dev, /proc and /sys
# emptied (a slot ships none of them), and every mtime set to 1 s as in a
# deployed slot.
set -euo pipefail
out=${1:?usage: deb-pair.sh OUTDIR}
pkgs=${DEB_PAIR_PACKAGES:-"less curl ca-certificates procps iproute2"}
[ -e "$out/.done" ] && exit 0
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$out"
if [ ! -e "$out/base.done" ]; then # debootstrap takes minutes: keep it across failures below
	rm -rf "$out/base"
	debootstrap --variant=minbase bookworm "$out/base" "$mirror" >"$out/debootstrap.log" 2>&1 ||
		{ tail -20 "$out/debootstrap.log" >&2; exit 1; }
	touch "$out/base.done"
fi
rm -rf "$out/old" "$out/new"
clean() { # ROOT
	rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb
	find "$1/dev" "$1/proc" "$1/sys" "$1/run" -mindepth 1 -delete 2>/dev/null || true
}
cp -a "$out/base" "$out/new"
# The install runs in a private mount namespace with its own /proc, so
# nothing is left mounted on any path.
unshare -m --propagation private sh -c "
	mount -t proc proc '$out/new/proc' && mount --rbind /dev '$out/new/dev' &&
	cp /etc/resolv.conf '$out/new/etc/resolv.conf' &&
	chroot '$out/new' sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs'
" >"$out/install.log" 2>&1 || { tail -20 "$out/install.log" >&2; exit 1; }
cp -a "$out/base" "$out/old"
clean "$out/old"
clean "$out/new"
for d in "$out/old" "$out/new"; do
	find "$d" -exec touch -h -d @1 {} +
done
touch "$out/.done"
