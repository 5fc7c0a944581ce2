#!/usr/bin/env bash
# Builds the system-test OS (issue 14; docs/state.md): Debian 12 with systemd
# as PID 1 and the project installed by `make install`, versions published
# to repositories on the host, and root disks provisioned from them. Each
# version carries its kernel, modules and initrd (issue 17; docs/boot.md).
# Run by `make image` (as root); every input comes from the environment:
#   OUT       build directory (build/image)         BIN     make build's bin/
#   KERNEL_DIR  v1's kernel tree (fetch-kernel.sh)  KERNEL2_DIR  v2's, newer
#   INIT      the initrd's /init (make initrd)      MODULES the initrd's module list
#   MIRROR    Debian mirror URL                     SECURITY_MIRROR  the debian-security mirror
#   PORT      repository port in the guest's config
# The debootstrap output is cached in $OUT/base (delete it to refetch).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
: "${OUT:?}" "${BIN:?}" "${KERNEL_DIR:?}" "${KERNEL2_DIR:?}" "${INIT:?}" "${MODULES:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}" "${PORT:?}"
SUITE=bookworm
USER_NAME=pupil
PACKAGES=systemd,systemd-sysv,dbus,polkitd,libpam-systemd,iproute2,procps,udev,kmod
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
t0=$(date +%s)
step() { echo "image: [$(($(date +%s) - t0))s] $*"; }

# chroot_run TREE CMD...: runs CMD in TREE with /proc, /sys and /dev in a
# private mount namespace (nothing leaks to the host), services never start;
# apt's downloads are kept in $OUT/debs/apt for the next build.
chroot_run() {
	local tree=$1
	shift
	mkdir -p "$OUT/debs/apt/partial"
	unshare -m --propagation private sh -c '
		t=$1 cache=$2; shift 2
		mount -t proc proc "$t/proc" && mount -t sysfs sys "$t/sys" && mount --rbind /dev "$t/dev" &&
		mount --bind "$cache" "$t/var/cache/apt/archives" &&
		exec chroot "$t" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"' sh "$tree" "$OUT/debs/apt" "$@"
}

# Build-time apt settings: the mirror may be a snapshot with old Release
# dates; services never start in the chroot. Removed before publishing.
build_mode() {
	local tree=$1
	printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' >"$tree/etc/apt/apt.conf.d/99image-build"
	printf '#!/bin/sh\nexit 101\n' >"$tree/usr/sbin/policy-rc.d"
	chmod 0755 "$tree/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$tree/etc/resolv.conf"
}
end_build_mode() {
	local tree=$1
	rm -f "$tree/etc/apt/apt.conf.d/99image-build" "$tree/usr/sbin/policy-rc.d" "$tree/etc/resolv.conf"
	rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin "$tree"/var/cache/apt/archives/*.deb "$tree"/var/log/apt/*
	# Each machine makes its own identity at first boot (docs/state.md).
	: >"$tree/etc/machine-id"
	rm -f "$tree/var/lib/dbus/machine-id"
}

base() {
	[ -e "$OUT/base/.done" ] && return
	step "debootstrap $SUITE (cached in $OUT/base afterwards)"
	rm -rf "$OUT/base.tmp"
	mkdir -p "$OUT/debs"
	# Docs, man pages and locales never reach the image (dpkg path-exclude),
	# also for what debootstrap unpacks itself: its second stage reads this.
	mkdir -p "$OUT/base.tmp/etc/dpkg/dpkg.cfg.d"
	cp "$here/rootfs/etc/dpkg/dpkg.cfg.d/01-nodoc" "$OUT/base.tmp/etc/dpkg/dpkg.cfg.d/"
	debootstrap --variant=minbase --cache-dir="$OUT/debs" --include="$PACKAGES" "$SUITE" "$OUT/base.tmp" "$MIRROR" >"$OUT/debootstrap.log"
	rm -rf "$OUT"/base.tmp/usr/share/{doc,man,info}/* "$OUT"/base.tmp/var/cache/apt/archives/*.deb
	find "$OUT/base.tmp/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
	touch "$OUT/base.tmp/.done"
	rm -rf "$OUT/base"
	mv "$OUT/base.tmp" "$OUT/base"
}

# install_project TREE N: the project exactly as a distribution installs it,
# built with a version marker so that version N's binaries differ.
install_project() {
	local tree=$1 n=$2
	GOFLAGS=-buildvcs=false \
		make -s -C "$src" install DESTDIR="$tree" PREFIX=/usr BIN="$OUT/bin-v$n" VERSION="osimage-v$n" >/dev/null
	systemctl --root="$tree" enable upgrade-check.timer upgrade-boot-complete.service >/dev/null 2>&1
}

# install_kernel TREE KDIR: the kernel of KDIR (a fetch-kernel.sh tree) as a
# slot carries it (docs/boot.md, Kernels): boot/vmlinuz-RELEASE and its
# link, the modules this OS loads (the initrd's for the root device, udev's
# virtio_net, the /etc overlay's overlay, with their dependencies) and the
# slot's own initrd, made by mkinitrd -slot. Any kernel the tree carried
# before goes, as when a kernel package replaces another.
install_kernel() {
	local tree=$1 kdir=$2 ver kd mods m
	ver=$(cat "$kdir/version")
	kd=$kdir/lib/modules/$ver
	rm -rf "$tree"/boot/vmlinuz* "$tree"/boot/initrd.img* "$tree"/usr/lib/modules/*
	install -D -m 0644 "$kdir/boot/vmlinuz-$ver" "$tree/boot/vmlinuz-$ver"
	ln -s "vmlinuz-$ver" "$tree/boot/vmlinuz"
	mods=$(for m in $(sed 's/#.*//' "$MODULES") virtio_net overlay; do
		modprobe -d "$kdir" -S "$ver" --show-depends "$m"
	done | awk '/^insmod/{print $2}' | sort -u)
	for m in $mods; do
		install -D -m 0644 "$m" "$tree/usr/lib/modules/$ver/${m#"$kd"/}"
	done
	cp "$kd"/modules.order "$kd"/modules.builtin* "$tree/usr/lib/modules/$ver/"
	depmod -b "$tree" "$ver"
	"$OUT/mkinitrd" -slot "$tree" -init "$INIT" -modules "$MODULES" >/dev/null
}

tree_v1() {
	local t=$OUT/tree/1
	step "v1: base system, the project, user $USER_NAME"
	rm -rf "$t"
	mkdir -p "$OUT/tree"
	cp -a "$OUT/base" "$t"
	rm -f "$t/.done"
	build_mode "$t"
	cp -a "$here/rootfs/." "$t/"
	sed -i "s|@PORT@|$PORT|g" "$t/etc/upgrade/upgraded.conf"
	mkdir -p "$t/etc/upgrade/keys"
	cp "$OUT/keys/osimage.pub" "$t/etc/upgrade/keys/"
	install_project "$t" 1
	install_kernel "$t" "$KERNEL_DIR"
	echo osimage >"$t/etc/hostname"
	chroot_run "$t" useradd --create-home --uid 1000 --shell /bin/bash "$USER_NAME"
	chroot_run "$t" sh -c "echo '$USER_NAME:$USER_NAME' | chpasswd && echo root:root | chpasswd"
	systemctl --root="$t" enable systemd-networkd.service systemtest-agent.service >/dev/null 2>&1
	systemctl --root="$t" mask serial-getty@ttyS0.service >/dev/null 2>&1
	end_build_mode "$t"
}

tree_v2() {
	local t=$OUT/tree/2
	step "v2: package upgrades from $SUITE-security and -updates, /etc changes, a new build of the project"
	rm -rf "$t"
	cp -a "$OUT/tree/1" "$t"
	build_mode "$t"
	cat >"$t/etc/apt/sources.list" <<-EOF
		deb $MIRROR $SUITE main
		deb $MIRROR $SUITE-updates main
		deb $SECURITY_MIRROR $SUITE-security main
	EOF
	chroot_run "$t" apt-get -qq update
	chroot_run "$t" apt-get -qq -y -o Dpkg::Options::=--force-confold upgrade >"$OUT/apt-upgrade-v2.log"
	sed -i 's/^PRETTY_NAME=.*/PRETTY_NAME="Debian GNU\/Linux 12 (osimage v2)"/' "$t/usr/lib/os-release"
	echo "osimage v2 \\n \\l" >"$t/etc/issue"
	echo "vendor motd of v2" >"$t/etc/motd"
	install_project "$t" 2
	install_kernel "$t" "$KERNEL2_DIR"
	end_build_mode "$t"
}

tree_v3() {
	local t=$OUT/tree/3
	step "v3: v2 plus a unit boot-complete.target requires, which fails"
	rm -rf "$t"
	cp -a "$OUT/tree/2" "$t"
	cp "$here/broken/systemtest-broken.service" "$t/usr/lib/systemd/system/"
	mkdir -p "$t/usr/lib/systemd/system/boot-complete.target.requires"
	ln -s ../systemtest-broken.service "$t/usr/lib/systemd/system/boot-complete.target.requires/"
	echo "osimage v3 \\n \\l" >"$t/etc/issue"
}

tree_kpanic() {
	local t=$OUT/tree/kpanic
	step "kpanic: v2 whose kernel panics at boot (its initrd's /init cannot run)"
	rm -rf "$t"
	cp -a "$OUT/tree/2" "$t"
	echo "osimage v3 (kpanic) \\n \\l" >"$t/etc/issue"
	printf 'not an executable\n' >"$OUT/broken-init"
	"$OUT/mkinitrd" -slot "$t" -init "$OUT/broken-init" -modules "$MODULES" >/dev/null
}

# boot_files N: what the firmware of a machine provisioned at version N
# loads, for ever: that version's kernel and initrd (docs/boot.md, Kernels).
boot_files() {
	local n=$1 b=$OUT/boot-v$1
	rm -rf "$b"
	mkdir -p "$b"
	cp -L "$OUT/tree/$n/boot/vmlinuz" "$b/vmlinuz"
	cp -L "$OUT/tree/$n/boot/initrd.img" "$b/initrd.img"
	basename "$(readlink "$OUT/tree/$n/boot/vmlinuz")" | sed 's/^vmlinuz-//' >"$b/release"
}

# slot_of TREE DIR: what a slot holds: the tree without the persistent
# directories, except the package database, which describes the slot.
slot_of() {
	local t=$1 s=$2
	rm -rf "$s"
	cp -al "$t" "$s"
	local keep
	keep=$(mktemp -d)
	mv "$s/var/lib/dpkg" "$keep/dpkg"
	rm -rf "$s/var" "$s/home" "$s/root" "$s/tmp" "$s/srv" "$s/mnt" "$s/media" "$s/dev" "$s/proc" "$s/sys" "$s/run"
	mkdir -p "$s/var/lib"
	mv "$keep/dpkg" "$s/var/lib/dpkg"
	rmdir "$keep"
}

publish() {
	step "publish v1, v2 (repo-v2: what scenario 1 sees), then v3 (repo), and kpanic as version 3 (repo-kpanic)"
	local pub="$BIN/upgrade-publish" key="$OUT/keys/osimage.key"
	rm -rf "$OUT/repo" "$OUT/repo-v2" "$OUT/repo-kpanic" "$OUT/slot"
	mkdir -p "$OUT/slot"
	for n in 1 2 3 kpanic; do
		slot_of "$OUT/tree/$n" "$OUT/slot/$n"
		local repo=$OUT/repo version=$n
		if [ $n = kpanic ]; then
			cp -a "$OUT/repo-v2" "$OUT/repo-kpanic"
			repo=$OUT/repo-kpanic version=3
		fi
		# Deltas from the previous version only: what the scenarios download.
		"$pub" add --repo "$repo" --key "$key" --ttl 720h --version "$version" --depth 1 "$OUT/slot/$n" >"$OUT/publish-v$n.log" 2>&1
		step "published v$n: $(tail -n 1 "$OUT/publish-v$n.log")"
		[ $n = 2 ] && cp -a "$OUT/repo" "$OUT/repo-v2"
	done
	rm -rf "$OUT/slot"
	chmod -R a+rX "$OUT/repo" "$OUT/repo-v2" "$OUT/repo-kpanic"
}

# disk N REPO: a root disk provisioned at version N, with the persistent
# directories seeded from v1's tree and /etc ready for its overlay.
disk() {
	local n=$1 repo=$2 r=$OUT/root-v$1 img=$OUT/disk-v$1.img
	step "disk-v$n.img: provision version $n"
	rm -rf "$r"
	"$BIN/upgrade-publish" provision --root "$r" --mirror "file://$repo/" --keys "$OUT/keys" --version "$n" >/dev/null
	"$here/layout.sh" "$OUT/tree/1" "$r"
	rm -f "$img"
	mkfs.ext4 -q -F -L osimage-root -d "$r" "$img" 3G
	rm -rf "$r"
}

keys() {
	[ -e "$OUT/keys/osimage.key" ] && return
	mkdir -p "$OUT/keys"
	"$BIN/upgrade-publish" keygen --out "$OUT/keys" --name osimage >/dev/null
}

base
keys
step "mkinitrd, for each version's own initrd"
(cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$OUT/mkinitrd" ./initrd/cmd/mkinitrd)
tree_v1
tree_v2
tree_v3
tree_kpanic
for n in 1 2; do boot_files $n; done
[ "$(cat "$OUT/boot-v1/release")" != "$(cat "$OUT/boot-v2/release")" ] || { echo "image: v1 and v2 carry the same kernel" >&2; exit 1; }
publish
disk 1 "$OUT/repo-v2"
disk 2 "$OUT/repo"
for n in 1 2; do chroot "$OUT/tree/$n" dpkg-query -W >"$OUT/packages-v$n.txt"; done
diff "$OUT/packages-v1.txt" "$OUT/packages-v2.txt" | sed -n 's/^> //p' >"$OUT/upgraded-packages.txt" || true
[ -s "$OUT/upgraded-packages.txt" ] || { echo "image: v2 has no package upgrades over v1" >&2; exit 1; }
step "done: $(wc -l <"$OUT/upgraded-packages.txt") packages upgraded in v2; repo $(du -sh "$OUT/repo" | cut -f1)"
echo "BUILD_SECONDS=$(($(date +%s) - t0))" >"$OUT/build.env"
