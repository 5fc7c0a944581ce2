#!/usr/bin/env bash
# Builds Debian's own initramfs (initramfs-tools, MODULES=most) for a kernel
# tree as fetch-kernel.sh leaves it, for the comparison figure of make
# bench-initrd. mkinitramfs reads the modules from /lib/modules/VERSION and
# the config from /boot/config-VERSION only, so both are pointed at the tree
# for the run by symlinks that are removed again; nothing else on the host
# changes (a private copy of the configuration, RESUME=none).
set -euo pipefail
kdir=$1 out=$2
ver=$(cat "$kdir/version")
command -v mkinitramfs >/dev/null || { echo "mkinitramfs not installed (make deps)" >&2; exit 1; }
for p in "/lib/modules/$ver" "/boot/config-$ver"; do
	if [ -e "$p" ] || [ -L "$p" ]; then
		echo "$p exists; refusing to shadow the host's kernel $ver" >&2
		exit 1
	fi
done
conf=$(mktemp -d)
made=()
cleanup() {
	for p in "${made[@]}"; do rm -f "$p"; done
	rmdir /lib/modules 2>/dev/null || true
	rm -rf "$conf"
}
trap cleanup EXIT
cp -a /etc/initramfs-tools/. "$conf/"
sed -i 's/^MODULES=.*/MODULES=most/' "$conf/initramfs.conf"
echo RESUME=none > "$conf/conf.d/resume"
mkdir -p /lib/modules /boot
ln -s "$(realpath "$kdir/lib/modules/$ver")" "/lib/modules/$ver"; made+=("/lib/modules/$ver")
ln -s "$(realpath "$kdir/boot/config-$ver")" "/boot/config-$ver"; made+=("/boot/config-$ver")
mkinitramfs -d "$conf" -o "$out.tmp" "$ver"
mv "$out.tmp" "$out"
