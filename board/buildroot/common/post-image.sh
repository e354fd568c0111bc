#!/bin/sh
# Lay out output/images/sdcard.img with the shared board/common/mkimage.sh,
# so that the Buildroot and Debian-package images have the same
# partitions, labels and disk signature: FAT boot, squashfs root, ext4
# data.
#
# Buildroot calls it as: post-image.sh <images dir> <board dir>, the
# board dir coming from BR2_ROOTFS_POST_SCRIPT_ARGS.
set -eu

die() {
	echo "post-image.sh: $*" >&2
	exit 1
}

# stage_boot IMAGES TOP DIR: the boot partition's files in DIR. On a
# Raspberry Pi the firmware, its config.txt and cmdline.txt, the device
# trees and the kernel config.txt names, and the folder settings are
# dropped in for provisioning (nut/) with nutapp's examples; on QEMU the
# kernel alone, since QEMU loads it itself, and no examples (it serves
# the image's simulated UPS), as the Debian-package build does.
stage_boot() {
	images=$1
	top=$2
	dir=$3

	rm -rf "$dir"
	mkdir -p "$dir"
	if [ -d "$images/rpi-firmware" ]; then
		cp -R "$images/rpi-firmware/." "$dir/"
		for dtb in "$images"/*.dtb; do
			[ -e "$dtb" ] && cp "$dtb" "$dir/"
		done
		kernel=$(sed -n 's/^kernel=//p' "$dir/config.txt")
		[ -n "$kernel" ] || die "no kernel= in config.txt"
		cp "$images/$kernel" "$dir/"
		if [ -d "$top/nutapp/provision/examples" ]; then
			cp -R "$top/nutapp/provision/examples" "$dir/nut"
		fi
	else
		cp "$images/Image" "$dir/"
	fi
	if [ -d "$top/overlay/boot/nut" ]; then
		mkdir -p "$dir/nut"
		cp -R "$top/overlay/boot/nut/." "$dir/nut/"
	fi
}

# stage_data DIR: the data partition's first contents, an empty settings
# folder, as the Debian-package build makes it.
stage_data() {
	dir=$1

	rm -rf "$dir"
	mkdir -p "$dir/etc"
	chmod 0750 "$dir/etc"
}

# as_root CMD...: mke2fs -d copies the owners of the files it is given;
# under fakeroot they belong to root, not to whoever runs the build.
as_root() {
	if [ -n "${HOST_DIR:-}" ] && [ -x "$HOST_DIR/bin/fakeroot" ]; then
		"$HOST_DIR/bin/fakeroot" -- "$@"
	elif [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v fakeroot >/dev/null; then
		fakeroot -- "$@"
	else
		die "need fakeroot (host-fakeroot) to make the data partition"
	fi
}

main() {
	images=${1:?images dir}
	board=${2:?board dir (BR2_ROOTFS_POST_SCRIPT_ARGS)}
	top=${BR2_EXTERNAL_NUTAPP_PATH:?set by Buildroot}
	work="${BUILD_DIR:?set by Buildroot}/nutapp-image"

	[ -f "$images/rootfs.squashfs" ] || die "no rootfs.squashfs in $images"

	stage_boot "$images" "$top" "$work/boot"
	stage_data "$work/data"
	as_root "$top/board/common/mkimage.sh" "$work/boot" \
		"$images/rootfs.squashfs" "$work/data" "$images/sdcard.img"

	if [ -f "$board/start-qemu.sh" ]; then
		cp "$top/board/common/cmdline-qemu.txt" "$images/cmdline.txt"
		install -m 0755 "$board/start-qemu.sh" "$images/start-qemu.sh"
	fi
	echo "post-image.sh: wrote $images/sdcard.img"
}

main "$@"
