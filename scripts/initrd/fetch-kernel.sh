#!/usr/bin/env bash
# Fetches a Debian cloud kernel (vmlinuz + modules) into $1 (default
# build/kernel) for the initrd VM tests. Without $2 the package is resolved
# through the linux-image-cloud-amd64 metapackage (its ABI number changes over
# time); $2 pins a package, e.g. linux-image-6.12.118+deb12-cloud-amd64 (the
# second kernel of the kernel-switch tests, docs/boot.md). Idempotent: a
# finished fetch leaves $1/.done and is reused.
set -euo pipefail
out=${1:-build/kernel}
pkg=${2:-}
if [ -e "$out/.done" ]; then exit 0; fi
resolve() {
	if [ -n "${2:-}" ]; then
		apt-cache show "$2" >/dev/null 2>&1 && echo "$2"
	else
		apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}'
	fi
}
name=$(resolve "$out" "$pkg" || true)
if [ -z "$name" ]; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	name=$(resolve "$out" "$pkg" || true)
fi
[ -n "$name" ] || { echo "fetch-kernel: cannot resolve ${pkg:-linux-image-cloud-amd64}" >&2; exit 1; }
pkg=$name
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
