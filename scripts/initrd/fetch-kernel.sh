#!/usr/bin/env bash
# Fetches the Debian cloud kernel (vmlinuz + modules) into $1 (default
# build/kernel) for the initrd VM tests. The ABI number changes over time, so
# the package is always resolved through the linux-image-cloud-amd64
# metapackage. Idempotent: a finished fetch leaves $1/.done and is reused.
set -euo pipefail
out=${1:-build/kernel}
if [ -e "$out/.done" ]; then exit 0; fi
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "$pkg" >/dev/null)
rm -rf "$out"
mkdir -p "$out"
dpkg -x "$tmp"/"$pkg"_*.deb "$out"
ver=$(ls "$out/lib/modules" | head -n1)
depmod -b "$out" "$ver"
ln -sf "boot/vmlinuz-$ver" "$out/vmlinuz"
echo "$ver" >"$out/version"
touch "$out/.done"
echo "fetch-kernel: $pkg in $out"
