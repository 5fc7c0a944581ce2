#!/usr/bin/env bash
# layout.sh TREE ROOT: completes a root that `upgrade-publish provision` made
# (slot a, current, top-level links) into the disk docs/state.md describes:
# the persistent directories seeded from the built TREE, the package
# database reached through the running slot, and /etc a mount point for the
# persistent overlay the image's init mounts.
set -euo pipefail
tree=$1 r=$2
# Merged over what provision wrote (var/lib/upgrade, var/lib/securityd).
for d in var home root srv mnt media; do
	mkdir -p "$r/$d"
	cp -a "$tree/$d/." "$r/$d/"
done
rm -rf "${r:?}/var/lib/dpkg"
ln -s ../../current/var/lib/dpkg "$r/var/lib/dpkg"
mkdir -p "$r/var/lib/upgrade" "$r/var/lib/etc-overlay/upper" "$r/var/lib/etc-overlay/work"
install -d -m 1777 "$r/tmp"
install -d -m 0755 "$r/dev" "$r/proc" "$r/sys" "$r/run"
rm "$r/etc"
install -d -m 0755 "$r/etc"
