#!/bin/sh
# Lay out output/images/sdcard.img for a nutapp board with genimage:
# a FAT boot partition, the squashfs root and an empty data partition.
#
# Buildroot calls it as: post-image.sh <images dir> <board dir>, the
# board dir coming from BR2_ROOTFS_POST_SCRIPT_ARGS.
set -eu

die() {
	echo "post-image.sh: $*" >&2
	exit 1
}

# The files of the boot partition, relative to the images dir, one per
# line: the Raspberry Pi firmware, device trees and the kernel its
# config.txt names; or, without firmware (QEMU), the kernel alone.
boot_files() {
	images=$1

	if [ ! -d "$images/rpi-firmware" ]; then
		echo Image
		return
	fi

	for f in "$images"/rpi-firmware/* "$images"/*.dtb; do
		[ -e "$f" ] && echo "${f#"$images"/}"
	done
	sed -n 's/^kernel=//p' "$images/rpi-firmware/config.txt"
}

genimage_config() {
	images=$1
	template=$2

	while IFS= read -r line; do
		if [ "$line" = "#BOOT_FILES#" ]; then
			boot_files "$images" | while IFS= read -r f; do
				printf '\t\t\t"%s",\n' "$f"
			done
		else
			printf '%s\n' "$line"
		fi
	done <"$template"
}

main() {
	images=${1:?images dir}
	board=${2:?board dir (BR2_ROOTFS_POST_SCRIPT_ARGS)}
	common=$(dirname "$0")

	[ -f "$images/rootfs.squashfs" ] || die "no rootfs.squashfs in $images"

	genimage_config "$images" "$common/genimage.cfg.in" >"$images/genimage.cfg"

	if [ -f "$board/start-qemu.sh" ]; then
		install -m 0755 "$board/start-qemu.sh" "$images/start-qemu.sh"
	fi

	# genimage copies its root path; the images are pre-built, so an
	# empty one is enough (and leaves the data partition empty).
	rootpath=$(mktemp -d)
	trap 'rm -rf "$rootpath"' EXIT
	tmppath="${BUILD_DIR:?}/genimage.tmp"
	rm -rf "$tmppath"

	genimage \
		--rootpath "$rootpath" \
		--tmppath "$tmppath" \
		--inputpath "$images" \
		--outputpath "$images" \
		--config "$images/genimage.cfg"

	echo "post-image.sh: wrote $images/sdcard.img"
}

main "$@"
