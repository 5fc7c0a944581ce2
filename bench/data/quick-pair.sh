#!/usr/bin/env bash
# Builds the small pair for `make bench-quick` from the Go pair: src/crypto
# of Go 1.26.8 and of Go 1.27.3 (~1.2k files, changed, new and removed ones,
# no binaries), so that publishing and every peer take seconds.
set -euo pipefail
go=${1:?usage: quick-pair.sh GOPAIRDIR OUTDIR}
out=${2:?usage: quick-pair.sh GOPAIRDIR OUTDIR}
[ -e "$out/.done" ] && exit 0
rm -rf "$out"; mkdir -p "$out"
cp -a "$go/old/src/crypto" "$out/old"
cp -a "$go/new/src/crypto" "$out/new"
touch "$out/.done"
