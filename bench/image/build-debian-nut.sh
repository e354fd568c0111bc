#!/usr/bin/env bash
# Build the comparison image for bench/image: a minimal Debian arm64 root
# running Debian's own NUT (nut-server's upsd and dummy-ups) serving the
# same simulated UPS, booted the same way as the nutapp image: same kernel,
# initramfs, partition layout, squashfs settings, start-up scripts and
# network.
#
#   bench/image/build-debian-nut.sh     (after ./build.sh image qemu)
#
# Writes out/bench/debian-nut-qemu.img. Needs root, like the image build.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out="${NUTAPP_OUT:-$top/out}"
mirror="${NUTAPP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${NUTAPP_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
nutapp_build="$out/build/qemu"
work="$out/bench/debian-nut"
image="$out/bench/debian-nut-qemu.img"

log() { printf 'build-debian-nut: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

main() {
	[ -d "$nutapp_build/boot" ] ||
		die "build the nutapp image first: ./build.sh image qemu"
	rm -rf "$work"
	mkdir -p "$work" "$out/cache/debs"
	unpack "$work/rootfs"
	configure "$work/rootfs"
	# Uncompressed, as the nutapp QEMU image (board/debian/build-image.sh).
	mksquashfs "$work/rootfs" "$work/rootfs.squashfs" -all-root -noI -noD \
		-noF -noX -b 256K -noappend -quiet -no-progress >/dev/null
	mkdir -p "$work/data"
	"$top/board/common/mkimage.sh" "$nutapp_build/boot" "$work/rootfs.squashfs" \
		"$work/data" "$image"
	log "wrote $image"
}

unpack() {
	local tree="$out/cache/bench-debian-nut"
	if [ ! -d "$tree" ]; then
		# shellcheck disable=SC2016 # mmdebstrap gives the hook the tree as $1
		mmdebstrap --mode=root --variant=extract --architectures=arm64 \
			--include=busybox-static,nut-server --skip=download/empty \
			--setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
			--setup-hook="sync-in '$out/cache/debs' /var/cache/apt/archives/" \
			--extract-hook="sync-out /var/cache/apt/archives '$out/cache/debs'" \
			--quiet bookworm "$tree.tmp" "deb $mirror bookworm main" \
			"deb $mirror bookworm-updates main" \
			"deb $security bookworm-security main" >&2
		mv "$tree.tmp" "$tree"
	fi
	cp -a "$tree" "$1"
}

# configure DIR: the nutapp image's start-up scripts (mounts, devices,
# network), Debian's NUT with the image's default UPS, and an inittab that
# runs upsd and dummy-ups in the foreground.
configure() {
	local dir="$1" path defaults
	rm -rf "$dir/usr/share/doc" "$dir/usr/share/man" "$dir/usr/share/locale" \
		"$dir/var/lib/dpkg" "$dir/var/cache" "$dir/var/log" "$dir/var/run" \
		"$dir/run" "$dir/tmp"
	mkdir -p "$dir/run" "$dir/tmp" "$dir/proc" "$dir/sys" "$dir/dev" \
		"$dir/boot" "$dir/data"
	ln -s /run "$dir/var/run"
	ln -s /run/log "$dir/var/log"
	for path in $(qemu-aarch64-static "$dir/bin/busybox" --list-full); do
		[ -e "$dir/$path" ] || [ -L "$dir/$path" ] && continue
		mkdir -p "$dir/$(dirname "$path")"
		ln -s /bin/busybox "$dir/$path"
	done
	cp -a "$nutapp_build/rootfs/lib/modules" "$dir/lib/"
	mkdir -p "$dir/etc/init.d" "$dir/usr/share/udhcpc"
	cp "$top/overlay/etc/init.d/rcS" "$top/overlay/etc/init.d/S00mounts" \
		"$top/overlay/etc/init.d/S10mdev" "$top/overlay/etc/init.d/S40network" \
		"$dir/etc/init.d/"
	cp "$top/overlay/usr/share/udhcpc/default.script" "$dir/usr/share/udhcpc/"
	cp "$top/overlay/etc/hostname" "$top/overlay/etc/mdev.conf" "$dir/etc/"
	printf 'root:x:0:0:root:/root:/bin/sh\nnut:x:3493:3493::/nonexistent:/bin/false\n' \
		>"$dir/etc/passwd"
	printf 'root:x:0:\nnut:x:3493:\n' >"$dir/etc/group"
	defaults="$top/overlay/usr/share/nutapp/default-nut"
	cp "$defaults/ups.conf" "$defaults/upsd.conf" "$defaults/upsd.users" \
		"$defaults/eaton-5e1100i.dev" "$dir/etc/nut/"
	echo MODE=netserver >"$dir/etc/nut/nut.conf"
	cat >"$dir/etc/inittab" <<-'EOF2'
	::sysinit:/etc/init.d/rcS
	::sysinit:/bin/sh -c 'mkdir -p /run/nut && chown nut:nut /run/nut'
	::respawn:/lib/nut/dummy-ups -a sim -F -u nut
	::respawn:/sbin/upsd -F -u nut
	EOF2
}

main "$@"
