#!/usr/bin/env bash
# Builds the Go version pair once: OUT/old = Go 1.26.8 (this machine's
# GOROOT), OUT/new = Go 1.27.3 (downloaded into the module cache by the go
# command). Both are copied with cp -a and normalised like a deployed slot:
# every mtime is 1 s, owner root, and u+w so that the copies can be removed.
set -euo pipefail
out=${1:?usage: go-pair.sh OUTDIR}
[ -e "$out/.done" ] && exit 0
rm -rf "$out"; mkdir -p "$out"
old=$(go env GOROOT)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && printf 'module x\ngo 1.26\n' > go.mod && GOTOOLCHAIN=go1.27.3 go version >&2)
new=$(go env GOMODCACHE)/golang.org/toolchain@v0.0.1-go1.27.3.linux-amd64
[ -d "$new" ] || { echo "go-pair: $new missing" >&2; exit 1; }
cp -a "$old" "$out/old"
cp -a "$new" "$out/new"
for d in "$out/old" "$out/new"; do
	chmod -R u+w "$d"
	chown -R -h 0:0 "$d"
	find "$d" -exec touch -h -d @1 {} +
done
touch "$out/.done"
