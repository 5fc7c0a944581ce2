#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/deps.d/*.txt that are missing,
# or with arguments only those of the named sets (`deps.sh demo`: what
# `make demo` needs, deps.d/demo.txt). As root it installs them; otherwise it
# names them and fails.
set -euo pipefail
cd "$(dirname "$0")"
lists=(deps.d/*.txt)
if [ $# -gt 0 ]; then
	lists=()
	for s in "$@"; do lists+=("deps.d/$s.txt"); done
fi
want=$(cat "${lists[@]}" | sed 's/#.*//' | tr -s ' \n' '\n' | sed '/^$/d' | sort -u)
missing=()
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages (run as root to install): ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/lists/partial/.upgrade-deps-updated
if [ ! -e "$stamp" ] || ! apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	touch "$stamp" 2>/dev/null || true
	apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi
