#!/usr/bin/env bash
# Builds the codec pair once (issue 18): OUT/old and OUT/new hold the files
# of a few Debian packages at the oldest and the newest version the apt
# mirror offers (bookworm against bookworm-security/-updates: rebuilt
# packages, so their man pages and changelogs are gzip -9n files that
# changed a little, and their executables moved code). Only the packages'
# own files, unpacked with dpkg -x; nothing is installed.
set -euo pipefail
out=${1:?usage: codec-pair.sh OUTDIR}
pkgs=${CODEC_PAIR_PACKAGES:-"openssl openssh-client curl systemd bind9-host git tzdata libc-bin"}
[ -e "$out/.done" ] && exit 0
rm -rf "$out/old" "$out/new" "$out/debs"
mkdir -p "$out/old" "$out/new" "$out/debs"
cd "$out/debs"
for p in $pkgs; do
	vers=$(apt-cache madison "$p" | awk -F'|' '{gsub(/ /, "", $2); print $2}' | sort -u)
	old=$(printf '%s\n' $vers | sort -V | head -1)
	new=$(printf '%s\n' $vers | sort -V | tail -1)
	if [ -z "$old" ] || [ "$old" = "$new" ]; then
		echo "codec-pair: $p has one version on this mirror; skipped" >&2
		continue
	fi
	for side in old new; do
		v=${!side}
		rm -rf dl && mkdir -m 0777 dl # apt drops to user _apt to download
		(cd dl && apt-get download -qq "$p=$v" >/dev/null)
		dpkg -x dl/*.deb "$out/$side"
		echo "$p $side $v" >>"$out/versions"
	done
done
rm -rf "$out/debs"
touch "$out/.done"
