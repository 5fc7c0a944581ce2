#!/usr/bin/env bash
# Builds the Go patch-release pair once (issue 18): OUT/old = Go 1.27.2,
# OUT/new = Go 1.27.3, both as the Go module proxy serves them
# (golang.org/toolchain modules, fetched into the module cache by the go
# command), so that the only differences are the patch release's. Copied
# and normalised like a deployed slot, as go-pair.sh does.
set -euo pipefail
out=${1:?usage: gopatch-pair.sh OUTDIR}
oldv=${GOPATCH_OLD:-go1.27.2}
newv=${GOPATCH_NEW:-go1.27.3}
[ -e "$out/.done" ] && exit 0
rm -rf "$out"; mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'module x\ngo 1.26\n' >"$tmp/go.mod"
for side in old new; do
	v=$oldv; [ "$side" = new ] && v=$newv
	(cd "$tmp" && GOTOOLCHAIN=$v go version >&2)
	dir=$(go env GOMODCACHE)/golang.org/toolchain@v0.0.1-$v.linux-amd64
	[ -d "$dir" ] || { echo "gopatch-pair: $dir missing" >&2; exit 1; }
	cp -a "$dir" "$out/$side"
done
for d in "$out/old" "$out/new"; do
	chmod -R u+w "$d"
	chown -R -h 0:0 "$d"
	find "$d" -exec touch -h -d @1 {} +
done
touch "$out/.done"
