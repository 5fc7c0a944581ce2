#!/usr/bin/env bash
# make demo: the whole job end to end on an embedded default — a sandbox
# root, a private system-like D-Bus, a repository served over HTTP on [::1].
# Everything it starts is stopped, and its temp dir removed, on every path.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/bin}
W=$(mktemp -d /tmp/upgrade-demo.XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { # wait_for FILE PATTERN: poll a log for readiness, 10 s at most
	for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "demo: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

say "1. Build server: a signing key and two versions of a sample OS tree"
go run ./scripts/demo/mktree 1 "$W/tree-1"
go run ./scripts/demo/mktree 2 "$W/tree-2"
"$BIN/upgrade-publish" keygen --out "$W/keys" --name builder
"$BIN/upgrade-publish" add --repo "$W/repo" --key "$W/keys/builder.key" --name 1.0 "$W/tree-1" 2>/dev/null
"$BIN/upgrade-publish" add --repo "$W/repo" --key "$W/keys/builder.key" --name 2.0 "$W/tree-2" 2>/dev/null
chmod -R a+rX "$W/repo"
mkdir "$W/trusted" && cp "$W/keys/builder.pub" "$W/trusted/"

say "2. A static repository over HTTP on [::1]"
"$BIN/upgrade-publish" serve --repo "$W/repo" --listen '[::1]:0' >"$W/serve.log" 2>&1 &
PIDS+=($!)
wait_for "$W/serve.log" "serving"
URL=$(grep -o 'http://[^ ]*' "$W/serve.log")
echo "repository: $URL"

say "3. Image builder: provision a laptop root at version 1"
"$BIN/upgrade-publish" provision --root "$W/root" --mirror "$URL" --keys "$W/trusted" --version 1 2>/dev/null
for f in "$W/root"/*; do
	if [ -L "$f" ]; then echo "  /$(basename "$f") -> $(readlink "$f")"; else echo "  /$(basename "$f")/"; fi
done

say "4. A private system-like D-Bus, the security service and the upgrade daemon"
mapfile -t BUS < <(go run ./scripts/demo/busconf "$W/bus")
export DBUS_SYSTEM_BUS_ADDRESS=${BUS[1]}
dbus-daemon --config-file="${BUS[0]}" --nofork --print-address >"$W/bus.log" 2>&1 &
PIDS+=($!)
wait_for "$W/bus.log" "unix:"
"$BIN/securityd" --root "$W/root" --keys "$W/trusted" >"$W/securityd.log" 2>&1 &
PIDS+=($!)
wait_for "$W/securityd.log" "ready"
"$BIN/upgraded" --root "$W/root" --keys "$W/trusted" --mirror "$URL" >"$W/upgraded.log" 2>&1 &
PIDS+=($!)
wait_for "$W/upgraded.log" "ready"
"$BIN/upgradectl" status

say "5. upgradectl check, then upgradectl upgrade"
"$BIN/upgradectl" check
"$BIN/upgradectl" upgrade

say "6. Ready to reboot: the next boot and what changed"
"$BIN/upgradectl" status
echo
echo "boot pointer (written only by securityd):"
sed 's/^/  /' "$W/root/var/lib/securityd/bootptr"
echo "current -> $(readlink "$W/root/current")   (the running system is untouched until the reboot)"
echo
echo "daemon log:"
sed 's/^/  /' "$W/upgraded.log"
echo "security service log:"
sed 's/^/  /' "$W/securityd.log"
echo
echo "what changed from slot a (version 1) to slot b (version 2):"
diff -rq --no-dereference "$W/root/a" "$W/root/b" | sed "s#$W/root/##g; s/^/  /" || true
a=$(stat -c %i "$W/root/a/usr/bin/unchanged"); b=$(stat -c %i "$W/root/b/usr/bin/unchanged")
echo "  an unchanged file shares its inode: a=$a b=$b"
a=$(stat -c '%i %A' "$W/root/a/bin/su"); b=$(stat -c '%i %A' "$W/root/b/bin/su")
echo "  a mode-only change got a new inode:  a=($a) b=($b)"
"$BIN/upgradectl" history
say "Demo finished; stopping everything and removing $W"
