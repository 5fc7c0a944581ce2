#!/usr/bin/env bash
# Builds the three .deb packages from the tracked files of the tree (a
# copy under OUT, since dpkg-buildpackage writes its results into the
# parent directory), then runs lintian; an error fails the build.
# usage: scripts/deb/build.sh OUT
set -euo pipefail
out=$(realpath -m "$1")
src=$out/src/laptop-upgrade-$(dpkg-parsechangelog -l debian/changelog -S Version)
rm -rf "$out/src"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | \
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done | \
	tar --null -T - -cf - | tar -xf - -C "$src"
(cd "$src" && dpkg-buildpackage -us -uc -b)
ls "$out"/src/*.deb
# --fail-on error: warnings (no man page yet, a static Go binary) are shown,
# errors fail. lintian refuses to run as root without --allow-root.
lintian --allow-root --fail-on error --tag-display-limit 0 "$out"/src/*.changes
