#!/bin/sh
# binsize.sh BIN: BENCH lines for the size of the daemons and upgradectl as
# make build left them in BIN, their size stripped (-ldflags='-s -w'), and
# how many net/http symbols each links (the security service must link
# none: cmd/deps_test.go enforces it, this shows what it saves).
set -eu
bin=$1
go=${GO:-go}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mib() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1048576 }'; }
for b in securityd upgradectl upgraded; do
	CGO_ENABLED=0 $go build -trimpath -ldflags='-s -w' -o "$tmp/$b" "./cmd/$b"
	echo "BENCH binary_${b}_mib $(mib "$(stat -c %s "$bin/$b")") MiB"
	echo "BENCH binary_${b}_stripped_mib $(mib "$(stat -c %s "$tmp/$b")") MiB"
	echo "BENCH binary_${b}_net_http_symbols $($go tool nm "$bin/$b" | awk '$3 ~ /^net\/http[.\/]/' | wc -l) symbols"
done
