#!/bin/sh
# Finish the target tree before Buildroot packs it into the read-only
# squashfs root, so that the image boots like the Debian-package build
# (board/debian/build-image.sh): the shared overlay's start-up scripts
# alone, writable places on tmpfs, mount points for the boot and data
# partitions, root's SSH keys pointing at the provisioned ones, and the
# nutapp version the console reports.
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
# the read-only root; dropbear's S50dropbear would start the SSH server
# whether or not SSH keys are provisioned (S57sshd starts it only then),
# and nftables' S35nftables would load /etc/nftables.conf rather than the
# provisioned firewall (S55system).
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

# drop_package_extras TARGET: what the Debian-package build also leaves
# out. Of Dropbear, the server and dropbearkey (nutapp ssh-hostkeys) only:
# no client, key converter or scp, and no /etc/dropbear, since the host
# key lives on the data partition. No example wpa_supplicant.conf (the
# provisioned one is in /etc/nut/system) and no ifupdown settings (the
# network script reads the provisioned interfaces file itself).
drop_package_extras() {
	target=$1

	for path in usr/bin/dbclient usr/bin/ssh usr/bin/dropbearconvert \
		usr/bin/scp etc/dropbear etc/wpa_supplicant.conf etc/network; do
		if [ -e "$target/$path" ] || [ -L "$target/$path" ]; then
			log "removing $path"
			rm -rf "${target:?}/$path"
		fi
	done
}

# link_ssh_keys TARGET: root's authorized_keys is the provisioned file
# (S57sshd starts Dropbear only when it is there), as on the
# Debian-package image; the root filesystem itself holds no key.
link_ssh_keys() {
	target=$1

	mkdir -p "$target/root/.ssh"
	chmod 0700 "$target/root" "$target/root/.ssh"
	rm -rf "$target/root/.ssh/authorized_keys"
	ln -s /etc/nut/system/authorized_keys "$target/root/.ssh/authorized_keys"
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
	drop_package_extras "$target"
	link_writable_places "$target"
	link_ssh_keys "$target"
	empty_boot "$target"
	write_version "$target" "$top"
}

main "$@"
