#!/bin/sh
# Finish the target tree before Buildroot packs it into the read-only
# squashfs root, so that the image boots like the Debian-package build
# (board/debian/build-image.sh): the shared overlay's start-up scripts
# alone, writable places on tmpfs, mount points for the boot and data
# partitions, and the nutapp version the console reports.
#
# Buildroot calls it as: post-build.sh <target dir> <board dir>, the
# board dir coming from BR2_ROOTFS_POST_SCRIPT_ARGS.
set -eu

log() {
	echo "post-build.sh: $*"
}

# drop_foreign_init_scripts TARGET OVERLAY...: the overlays' etc/init.d
# is the boot sequence. Start-up scripts Buildroot packages add beside it
# (klogd, crond, seedrng, modules) would start a second time or write to
# the read-only root.
drop_foreign_init_scripts() {
	target=$1
	shift

	for script in "$target"/etc/init.d/S??*; do
		[ -e "$script" ] || continue
		name=$(basename "$script")
		keep=no
		for overlay in "$@"; do
			[ -e "$overlay/etc/init.d/$name" ] && keep=yes
		done
		if [ "$keep" = no ]; then
			log "removing etc/init.d/$name: not one of the overlay's"
			rm -f "$script"
		fi
	done
}

# link_writable_places TARGET: S00mounts puts tmpfs on /run and /tmp; the
# read-only root only points there.
link_writable_places() {
	target=$1

	mkdir -p "$target/boot" "$target/data" "$target/run" "$target/tmp" \
		"$target/var/lib"
	for link in var/tmp:/tmp var/run:/run var/lock:/run/lock \
		var/log:/run/log etc/resolv.conf:/run/net/resolv.conf; do
		rm -rf "${target:?}/${link%%:*}"
		ln -s "${link#*:}" "$target/${link%%:*}"
	done
}

# empty_boot TARGET: /boot is where the FAT partition is mounted. The
# overlay's boot/ (provisioning examples) goes onto that partition
# (post-image.sh), not under the mount point.
empty_boot() {
	target=$1

	rm -rf "${target:?}/boot"
	mkdir "$target/boot"
}

write_version() {
	target=$1
	top=$2

	version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$top/nutapp/__init__.py")
	[ -n "$version" ] || {
		echo "post-build.sh: no __version__ in $top/nutapp/__init__.py" >&2
		exit 1
	}
	mkdir -p "$target/usr/share/nutapp"
	echo "$version" >"$target/usr/share/nutapp/version"
}

main() {
	target=${1:?target dir}
	board=${2:?board dir (BR2_ROOTFS_POST_SCRIPT_ARGS)}
	top=${BR2_EXTERNAL_NUTAPP_PATH:?set by Buildroot}

	drop_foreign_init_scripts "$target" "$top/overlay" "$board/overlay"
	link_writable_places "$target"
	empty_boot "$target"
	write_version "$target" "$top"
}

main "$@"
