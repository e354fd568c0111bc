#!/usr/bin/env bash
# Join boot files, a squashfs root and the data partition's first contents
# into the nutapp SD card image (board/common/genimage.cfg).
#
#   board/common/mkimage.sh BOOT_DIR ROOTFS_SQUASHFS DATA_DIR OUTPUT_IMG
#
# Shared by the Debian-package build and Buildroot's post-image step, so both
# give the same layout and labels: p1 FAT "NUTBOOT" (64 MiB), p2 squashfs,
# p3 ext4 "NUTDATA" (16 MiB). No loop devices or mounts: mkfs.vfat -C and
# mcopy fill the FAT image, mke2fs -d the ext4 one.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
boot_mib=64
data_mib=16

log() { printf 'mkimage: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

main() {
	[ "$#" -eq 4 ] || die "usage: $0 BOOT_DIR ROOTFS_SQUASHFS DATA_DIR OUTPUT_IMG"
	local boot_dir="$1" rootfs="$2" data_dir="$3" output="$4"
	work=$(mktemp -d "${TMPDIR:-/tmp}/nutapp-mkimage.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	mkdir -p "$work/input" "$work/output" "$work/root" "$work/tmp"

	make_vfat "$boot_dir" "$work/input/boot.vfat"
	cp "$rootfs" "$work/input/rootfs.squashfs"
	make_ext4 "$data_dir" "$work/input/data.ext4"
	genimage --config "$here/genimage.cfg" --inputpath "$work/input" \
		--outputpath "$work/output" --rootpath "$work/root" \
		--tmppath "$work/tmp" >"$work/genimage.log" 2>&1 ||
		{ cat "$work/genimage.log" >&2; die "genimage failed"; }
	mv "$work/output/nutapp.img" "$output"
}

# make_vfat DIR OUT: a FAT image labelled NUTBOOT holding DIR's contents.
make_vfat() {
	local dir="$1" out="$2"
	rm -f "$out"
	mkfs.vfat -C -n NUTBOOT -i 6e757401 "$out" $((boot_mib * 1024)) >/dev/null
	MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$out" "$dir"/* ::/
}

# make_ext4 DIR OUT: an ext4 image labelled NUTDATA holding DIR's contents,
# never checked by mount count or age (it is mostly mounted read-only).
make_ext4() {
	local dir="$1" out="$2"
	rm -f "$out"
	mke2fs -q -t ext4 -L NUTDATA -d "$dir" -N 256 "$out" "${data_mib}M" >/dev/null ||
		die "mke2fs failed"
	tune2fs -c 0 -i 0 "$out" >/dev/null
}

main "$@"
