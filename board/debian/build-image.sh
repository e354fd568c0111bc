#!/usr/bin/env bash
# Build the nutapp appliance image offline from Debian arm64 packages.
#
#   board/debian/build-image.sh [qemu|rpi3|rpi4]
#
# Writes out/nutapp-<version>-<board>.img, updates out/SHA256SUMS and, when
# NUTAPP_SIGNING_KEY names a PEM private key (RSA, EC or Ed25519), writes a
# detached signature out/nutapp-<version>-<board>.img.sig with OpenSSL
# (board/common/sign.sh; board/debian/verify-image.sh checks both).
#
# Nothing runs inside the target: mmdebstrap only unpacks Debian's arm64
# packages (cached under out/cache), qemu-aarch64-static runs the target's
# Python once to precompile .pyc files, and the partitions are made from
# directories (mksquashfs, mkfs.vfat + mcopy, mke2fs -d) then joined by
# genimage. So the build needs root for nothing but mmdebstrap's ownership
# of unpacked files, and no loop devices or mounts.
#
# Environment:
#   NUTAPP_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   NUTAPP_DEBIAN_SECURITY_MIRROR  its security updates
#                         (default http://deb.debian.org/debian-security)
#   NUTAPP_SIGNING_KEY    PEM private key to sign the image with
#   NUTAPP_OUT            output folder (default <repo>/out)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
common="$top/board/common"
here="$top/board/debian"
out="${NUTAPP_OUT:-$top/out}"
mirror="${NUTAPP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${NUTAPP_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
suite=bookworm

# What goes into the root filesystem; apt adds their dependencies.
# nftables loads the provisioned firewall; netbase gives it /etc/protocols.
# libc-bin is for ldconfig: ctypes.util.find_library, which pyusb uses to
# find libusb, asks `ldconfig -p`.
root_packages=(busybox-static libc-bin python3-minimal python3.11-minimal
	python3 python3-serial python3-usb python3-cryptography python3-gpiozero
	nftables netbase)
# Wi-Fi: wpa_supplicant joins the provisioned network, and the regulatory
# database gives the radio its country's rules. A Pi's radio also needs its
# firmware (added per board in main).
root_packages+=(wpasupplicant wireless-regdb)
# dropbear-bin: the SSH server, started only when SSH keys are provisioned
# (/etc/init.d/S57sshd); its client and key converter are removed below.
root_packages+=(dropbear-bin)
# What the build takes boot files from: kernel, modules, Pi firmware.
kit_packages=(linux-image-arm64 raspi-firmware busybox-static)

# shellcheck source=board/common/sign.sh
. "$common/sign.sh"

log() { printf 'build-image: [%3ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "$*"; exit 1; }

main() {
	board="${1:-qemu}"
	case "$board" in
	qemu | rpi3 | rpi4) ;;
	*) die "unknown board '$board' (qemu, rpi3, rpi4)" ;;
	esac
	case "$board" in
	rpi*) root_packages+=(firmware-brcm80211) ;;
	esac
	[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap unpacks files owned by root)"
	version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$top/nutapp/__init__.py")
	[ -n "$version" ] || die "no __version__ in nutapp/__init__.py"

	work="$out/build/$board"
	image="$out/nutapp-$version-$board.img"
	rm -rf "$work"
	mkdir -p "$work" "$out/cache/debs"

	root_tree=$(unpacked_tree root "${root_packages[@]}")
	kit_tree=$(unpacked_tree kit "${kit_packages[@]}")
	kver=$(kernel_version "$kit_tree")
	log "board $board, nutapp $version, kernel $kver"

	stage_rootfs "$work/rootfs"
	log "making the squashfs root"
	make_squashfs "$work/rootfs" "$work/images/rootfs.squashfs"
	log "making the initramfs and the partitions"
	make_initramfs "$work/initramfs" "$work/boot/initrd.img"
	stage_boot "$work/boot"
	make_data "$work/data"
	"$common/mkimage.sh" "$work/boot" "$work/images/rootfs.squashfs" \
		"$work/data" "$image"
	checksum_and_sign "$image"
	log "wrote $image ($(du -h "$image" | cut -f1))"
}

# unpacked_tree NAME PACKAGE...: print the folder holding the packages (and
# their dependencies) unpacked for arm64, unpacking them first unless a tree
# for the same package list is cached. Downloaded .debs are kept for the
# next list.
unpacked_tree() {
	local name="$1" key tree tmp include
	# shellcheck disable=SC2016 # mmdebstrap gives the hook the tree as $1
	local mkdir_hook='mkdir -p "$1/var/cache/apt/archives"'
	shift
	key=$(printf '%s\n' "$suite" "$mirror" "$security" "$@" | sha256sum | cut -c1-12)
	include=$(IFS=,; echo "$*")
	tree="$out/cache/$name-$key"
	if [ ! -d "$tree" ]; then
		log "unpacking arm64 packages for $name (cached as $tree)"
		tmp="$tree.tmp"
		rm -rf "$tmp"
		mmdebstrap --mode=root --variant=extract --architectures=arm64 \
			--components=main,non-free-firmware \
			--include="$include" \
			--skip=download/empty \
			--setup-hook="$mkdir_hook" \
			--setup-hook="sync-in '$out/cache/debs' /var/cache/apt/archives/" \
			--extract-hook="sync-out /var/cache/apt/archives '$out/cache/debs'" \
			--quiet \
			"$suite" "$tmp" "deb $mirror $suite main non-free-firmware" \
			"deb $mirror $suite-updates main non-free-firmware" \
			"deb $security $suite-security main non-free-firmware" >&2
		rm -f "$out/cache/debs/lock"
		rm -rf "$out/cache/debs/partial"
		mv "$tmp" "$tree"
	fi
	echo "$tree"
}

kernel_version() {
	local v
	v=$(find "$1/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
	[ -n "$v" ] || die "no kernel in $1"
	echo "$v"
}

# stage_rootfs DIR: the root filesystem: Debian's files less what an
# appliance never uses, the shared overlay, nutapp, users and modules.
stage_rootfs() {
	local dir="$1"
	log "staging the root filesystem"
	cp -a "$root_tree" "$dir"
	package_manifest "$dir" >"$work/packages.txt"
	prune_rootfs "$dir"
	prune_wifi "$dir"
	busybox_links "$dir"
	tar -C "$top/overlay" --exclude=./boot --owner=0 --group=0 -cf - . | tar -C "$dir" -xf -
	# /etc/nut is where S50nutapp binds the configuration in use.
	mkdir -p "$dir/etc/nut"
	install_users "$dir"
	# Root's SSH keys are the provisioned ones, when any (S57sshd).
	mkdir -p "$dir/root/.ssh"
	chmod 0700 "$dir/root" "$dir/root/.ssh"
	ln -sfn /etc/nut/system/authorized_keys "$dir/root/.ssh/authorized_keys"
	install_nutapp "$dir"
	install_modules "$dir" "$here/modules/common.rootfs" \
		"$here/modules/$board.rootfs"
	mkdir -p "$dir/usr/share/nutapp"
	cp "$work/packages.txt" "$dir/usr/share/nutapp/debian-packages.txt"
	echo "$version" >"$dir/usr/share/nutapp/version"
	precompile "$dir"
	# The shared library cache (ldconfig is a static program).
	qemu-aarch64-static "$dir/sbin/ldconfig" -r "$dir"
}

# package_manifest DIR: name, version and source of every Debian package in
# the tree, for licences and security notices (dpkg's database is dropped).
package_manifest() {
	awk '/^Package:/ {p=$2} /^Version:/ {v=$2} /^$/ {if (p) print p, v; p=""}
		END {if (p) print p, v}' "$1/var/lib/dpkg/status" | sort
}

prune_rootfs() {
	local dir="$1" py="$1/usr/lib/python3.11"
	rm -rf "$dir/var/lib/dpkg" "$dir/var/lib/apt" "$dir/var/cache" \
		"$dir/var/log" "$dir/etc/apt" "$dir/etc/dpkg" "$dir/etc/cron.daily" \
		"$dir/etc/logrotate.d" "$dir/usr/share/doc" "$dir/usr/share/man" \
		"$dir/usr/share/info" "$dir/usr/share/locale" "$dir/usr/share/lintian" \
		"$dir/usr/share/bug" "$dir/usr/share/doc-base" "$dir/usr/share/menu" \
		"$dir/usr/share/applications" "$dir/usr/share/pixmaps" \
		"$dir/usr/share/python3" "$dir/usr/share/binfmts" \
		"$dir/usr/share/bash-completion" "$dir/usr/share/readline" \
		"$dir/usr/share/debconf" "$dir/usr/share/gcc" "$dir/usr/share/gdb" \
		"$dir/usr/lib/aarch64-linux-gnu/gconv" "$dir/usr/lib/mime" \
		"$dir/usr/lib/aarch64-linux-gnu/krb5" "$dir/usr/share/zsh"
	# The standard library less tests, tools, GUI and databases.
	rm -rf "$py/test" "$py/idlelib" "$py/tkinter" "$py/turtledemo" \
		"$py/turtle.py" "$py/lib2to3" "$py/ensurepip" "$py/pydoc_data" \
		"$py/distutils" "$py/venv" "$py/sqlite3" "$py/dbm" "$py/curses" \
		"$py/config-3.11-aarch64-linux-gnu" "$py/wsgiref" "$py/xmlrpc" \
		"$py/__phello__" "$py/msilib"
	rm -f "$py"/lib-dynload/_sqlite3.* "$py"/lib-dynload/_dbm.* \
		"$py"/lib-dynload/_gdbm.* "$py"/lib-dynload/_curses*.* \
		"$py"/lib-dynload/_test*.* "$py"/lib-dynload/xxlimited*.* \
		"$py"/lib-dynload/_xxtestfuzz.* "$py"/lib-dynload/nis.* \
		"$py"/lib-dynload/ossaudiodev.* "$py"/lib-dynload/readline.* \
		"$py"/lib-dynload/_codecs_[a-z][a-z].* "$py"/lib-dynload/_codecs_iso2022.* \
		"$py"/lib-dynload/_ctypes_test.* "$py"/lib-dynload/_tkinter.*
	# Shared libraries only the removed modules used.
	rm -f "$dir"/usr/lib/aarch64-linux-gnu/libsqlite3.so* \
		"$dir"/usr/lib/aarch64-linux-gnu/libdb-5.3.so \
		"$dir"/usr/lib/aarch64-linux-gnu/lib*w.so.6* \
		"$dir"/usr/lib/aarch64-linux-gnu/libtic.so* \
		"$dir"/usr/lib/aarch64-linux-gnu/libgssapi_krb5.so* \
		"$dir"/usr/lib/aarch64-linux-gnu/libkrb5*.so* \
		"$dir"/usr/lib/aarch64-linux-gnu/libk5crypto.so* \
		"$dir"/usr/lib/aarch64-linux-gnu/libnsl.so* \
		"$dir"/usr/lib/aarch64-linux-gnu/libtirpc.so*
	# The SSH server only: no client, no key converter.
	rm -rf "$dir/usr/bin/dbclient" "$dir/usr/bin/dropbearconvert" \
		"$dir/usr/lib/dropbear"
	find "$dir" -depth -name __pycache__ -type d -exec rm -rf {} +
	# Writable places live on tmpfs; the read-only root only points there.
	rm -rf "$dir/tmp" "$dir/var/tmp" "$dir/var/run" "$dir/var/lock"
	mkdir -p "$dir/tmp" "$dir/run" "$dir/proc" "$dir/sys" "$dir/dev" \
		"$dir/boot" "$dir/data" "$dir/var/lib"
	ln -s /tmp "$dir/var/tmp"
	ln -s /run "$dir/var/run"
	ln -s /run/lock "$dir/var/lock"
	ln -s /run/log "$dir/var/log"
	ln -sf /run/net/resolv.conf "$dir/etc/resolv.conf"
}

# prune_wifi DIR: wpa_supplicant and the Pi's radio firmware without what
# they drag in for a desktop: account tools and PAM (adduser), debconf,
# D-Bus and systemd units, ifupdown hooks, and the firmware of other boards'
# radios. wpa_supplicant links libdbus (and it libsystemd), so those stay.
# The regulatory database is chosen the way the package's alternatives
# would: Debian's signed copy, which Debian's kernel trusts.
prune_wifi() {
	local dir="$1" fw="$1/lib/firmware"
	rm -rf "$dir/etc/adduser.conf" "$dir/etc/deluser.conf" "$dir/etc/default/useradd" \
		"$dir/etc/pam.d" "$dir/etc/security" "$dir/etc/selinux/semanage.conf" \
		"$dir/etc/libaudit.conf" "$dir/etc/debconf.conf" "$dir/etc/dbus-1" \
		"$dir/etc/network" "$dir/etc/ifplugd" "$dir/etc/wpa_supplicant" \
		"$dir/lib/systemd" "$dir/usr/lib/systemd" "$dir/usr/lib/tmpfiles.d" \
		"$dir/usr/lib/NetworkManager" "$dir/usr/lib/pm-utils" \
		"$dir/usr/share/dbus-1" "$dir/usr/share/perl5/Debconf" \
		"$dir/usr/share/perl5/Debian" "$dir/usr/share/pam-configs" \
		"$dir/usr/share/libgcrypt20" "$dir/lib/aarch64-linux-gnu/security"
	rm -f "$dir"/usr/sbin/*user* "$dir"/usr/sbin/*group* "$dir"/usr/sbin/*pw* \
		"$dir"/usr/sbin/*gr "$dir"/usr/sbin/grp* "$dir"/usr/sbin/chgpasswd \
		"$dir"/usr/sbin/chpasswd "$dir"/usr/sbin/newusers "$dir"/usr/sbin/faillock \
		"$dir"/usr/sbin/pam_timestamp_check "$dir"/usr/sbin/dpkg-*configure \
		"$dir"/usr/bin/chage "$dir"/usr/bin/chfn "$dir"/usr/bin/chsh \
		"$dir"/usr/bin/expiry "$dir"/usr/bin/gpasswd "$dir"/usr/bin/passwd \
		"$dir"/usr/bin/debconf* "$dir"/sbin/mkhomedir_helper \
		"$dir"/sbin/pam_namespace_helper "$dir"/sbin/pwhistory_helper \
		"$dir"/sbin/shadowconfig "$dir"/sbin/unix_chkpwd "$dir"/sbin/unix_update \
		"$dir"/sbin/wpa_action "$dir"/usr/bin/wpa_passphrase \
		"$dir"/lib/aarch64-linux-gnu/libpam*.so* \
		"$dir"/lib/aarch64-linux-gnu/libaudit.so* \
		"$dir"/lib/aarch64-linux-gnu/libcap-ng.so* \
		"$dir"/lib/aarch64-linux-gnu/libsepol.so* \
		"$dir"/lib/aarch64-linux-gnu/libpsx.so* \
		"$dir"/lib/aarch64-linux-gnu/libdrop_ambient.so* \
		"$dir"/usr/lib/aarch64-linux-gnu/libsemanage.so*
	if [ -d "$fw/brcm" ]; then
		# Pi 3B: BCM43430; Pi 3B+ and 4B: BCM43455 (Cypress builds).
		find "$fw/brcm" "$fw/cypress" ! -type d ! -name 'brcmfmac43430-sdio.*' \
			! -name 'brcmfmac43455-sdio.*' ! -name 'cyfmac43430-sdio.*' \
			! -name 'cyfmac43455-sdio.*' -delete
		find "$fw/brcm" -name '*.txt' ! -name '*.raspberrypi,*' -delete
	fi
	if [ -f "$fw/regulatory.db-debian" ]; then
		ln -sf regulatory.db-debian "$fw/regulatory.db"
		ln -sf regulatory.db.p7s-debian "$fw/regulatory.db.p7s"
		rm -f "$fw"/regulatory.db*-upstream
	fi
}

# busybox_links DIR: a link for every BusyBox applet that no Debian package
# installed as a real program.
busybox_links() {
	local dir="$1" path
	for path in $(qemu-aarch64-static "$dir/bin/busybox" --list-full); do
		[ -e "$dir/$path" ] || [ -L "$dir/$path" ] && continue
		mkdir -p "$dir/$(dirname "$path")"
		ln -s /bin/busybox "$dir/$path"
	done
}

# install_users DIR: /etc/passwd, /etc/group and /etc/shadow from the shared
# users table (Buildroot's format: name uid group gid password home shell
# groups comment), plus root.
install_users() {
	local dir="$1" name uid group gid _pw home shell _groups comment
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$dir/etc/passwd"
	printf 'root:x:0:\n' >"$dir/etc/group"
	printf 'root:*:1::::::\n' >"$dir/etc/shadow"
	while read -r name uid group gid _pw home shell _groups comment; do
		case "$name" in '' | '#'*) continue ;; esac
		[ "$home" = - ] && home=/nonexistent
		[ "$shell" = - ] && shell=/bin/false
		printf '%s:x:%s:%s:%s:%s:%s\n' "$name" "$uid" "$gid" "$comment" \
			"$home" "$shell" >>"$dir/etc/passwd"
		printf '%s:x:%s:\n' "$group" "$gid" >>"$dir/etc/group"
		printf '%s:*:1::::::\n' "$name" >>"$dir/etc/shadow"
	done <"$common/users.txt"
	chmod 0640 "$dir/etc/shadow"
}

# install_nutapp DIR: the nutapp package and its launcher.
install_nutapp() {
	local dir="$1" site="$1/usr/lib/python3/dist-packages"
	rm -rf "$site/nutapp"
	(cd "$top" && find nutapp -name '*.py' -print0 |
		cpio --null -pdm --quiet "$site")
	cat >"$dir/usr/bin/nutapp" <<-'EOF'
	#!/usr/bin/python3 -I
	from nutapp.cli import run
	run()
	EOF
	chmod 0755 "$dir/usr/bin/nutapp"
}

# install_modules DIR LIST...: the kernel modules named in the LIST files
# (one a line) with what they depend on, and their index for modprobe.
install_modules() {
	local dir="$1" mod path
	shift
	mkdir -p "$dir/lib/modules/$kver"
	cp "$kit_tree/lib/modules/$kver"/modules.builtin* \
		"$kit_tree/lib/modules/$kver/modules.order" "$dir/lib/modules/$kver/"
	[ -f "$kit_tree/lib/modules/$kver/modules.dep" ] ||
		depmod -b "$kit_tree" "$kver"
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$@" | while read -r mod; do
		for path in $(modprobe -d "$kit_tree" -S "$kver" \
			--show-depends "$mod" | awk '$1 == "insmod" {print $2}'); do
			path="${path#"$kit_tree"}"
			mkdir -p "$dir$(dirname "$path")"
			cp "$kit_tree$path" "$dir$path"
		done
	done
	depmod -b "$dir" "$kver"
}

# precompile DIR: .pyc files for every module, checked by hash rather than
# by mtime (the root is read-only). Bytecode does not depend on the CPU, only
# on the Python release: the target's own Python, run by qemu-aarch64-static,
# tells its bytecode magic number, and the host's python3.11 does the work
# when it has the same one (several times faster than emulation).
precompile() {
	local dir="$1" target_magic host_magic python
	python=(qemu-aarch64-static -L "$dir" "$dir/usr/bin/python3.11")
	target_magic=$("${python[@]}" -I -c "$magic")
	host_magic=$(python3.11 -I -c "$magic" 2>/dev/null || true)
	if [ "$host_magic" = "$target_magic" ]; then
		python=(python3.11)
		log "precompiling Python modules (host python3.11, same bytecode $target_magic)"
	else
		log "precompiling Python modules under qemu-aarch64-static"
	fi
	"${python[@]}" -I -m compileall -q -j 0 -s "$dir" -p / \
		--invalidation-mode unchecked-hash \
		"$dir/usr/lib/python3.11" "$dir/usr/lib/python3/dist-packages" >/dev/null
}
magic='import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())'

# make_squashfs DIR OUT: the read-only root, every file owned by root
# whoever owns the checkout it came from. Compressed with zstd for a Pi,
# whose SD card reads slower than its CPU decompresses; left uncompressed
# for QEMU, whose disk is the host's page cache and whose emulated CPU
# decompresses slowly (2 s less to serving; the xz-compressed image is
# smaller too, xz doing better on the plain files).
make_squashfs() {
	local compression
	case "$board" in
	qemu) compression=(-noI -noD -noF -noX) ;;
	*) compression=(-comp zstd -Xcompression-level 9) ;;
	esac
	mkdir -p "$(dirname "$2")"
	rm -f "$2"
	mksquashfs "$1" "$2" -all-root "${compression[@]}" -b 256K \
		-noappend -quiet -no-progress >/dev/null
}

# make_initramfs DIR OUT: BusyBox, the modules needed to reach the root
# filesystem, and an /init that mounts it and hands over.
make_initramfs() {
	local dir="$1" dest="$2" applet
	mkdir -p "$dir"/bin "$dir"/dev "$dir"/proc "$dir"/sys "$dir"/newroot \
		"$(dirname "$dest")"
	cp "$kit_tree/bin/busybox" "$dir/bin/busybox"
	for applet in sh mount umount switch_root modprobe sleep cat findfs \
		mkdir echo ls mdev; do
		ln -sf busybox "$dir/bin/$applet"
	done
	install -m 0755 "$here/initramfs-init" "$dir/init"
	mkdir -p "$dir/etc"
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/modules/$board.initramfs" \
		>"$dir/etc/modules"
	install_modules "$dir" "$here/modules/$board.initramfs"
	(cd "$dir" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) | zstd -q -19 -T0 >"$dest"
}

# stage_boot DIR: the FAT partition's files: kernel, initramfs, the Pi's
# firmware and settings, and the provisioning examples.
stage_boot() {
	local dir="$1" fw="$kit_tree/usr/lib/raspi-firmware"
	cp "$kit_tree/boot/vmlinuz-$kver" "$dir/vmlinuz"
	case "$board" in
	rpi3)
		cp "$fw/bootcode.bin" "$fw/start.elf" "$fw/fixup.dat" "$dir/"
		cp "$kit_tree/usr/lib/linux-image-$kver"/broadcom/bcm2837-*.dtb "$dir/"
		;;
	rpi4)
		cp "$fw/start4.elf" "$fw/fixup4.dat" "$dir/"
		cp "$kit_tree/usr/lib/linux-image-$kver"/broadcom/bcm2711-*.dtb "$dir/"
		;;
	esac
	case "$board" in
	rpi*)
		cp "$common/config.txt" "$common/cmdline.txt" "$dir/"
		;;
	qemu)
		cp "$common/cmdline-qemu.txt" "$dir/cmdline.txt"
		;;
	esac
	# The folder settings are dropped in for provisioning, with nutapp's
	# examples. Not on the QEMU board: it serves the image's simulated UPS.
	case "$board" in
	rpi*)
		if [ -d "$top/nutapp/provision/examples" ]; then
			cp -r "$top/nutapp/provision/examples" "$dir/nut"
		fi
		if [ -d "$top/overlay/boot/nut" ]; then
			mkdir -p "$dir/nut"
			cp -r "$top/overlay/boot/nut/." "$dir/nut/"
		fi
		;;
	esac
}

# make_data DIR: the data partition's first contents: none, provisioning
# fills it.
make_data() {
	mkdir -p "$1"
}

# checksum_and_sign IMAGE: record IMAGE in SHA256SUMS (one line per file
# name) and sign it when a key is given.
checksum_and_sign() {
	local image="$1" name sums="$out/SHA256SUMS"
	name=$(basename "$image")
	touch "$sums"
	grep -v "  $name\$" "$sums" >"$sums.tmp" || true
	(cd "$out" && sha256sum "$name") >>"$sums.tmp"
	mv "$sums.tmp" "$sums"
	rm -f "$image.sig"
	if [ -n "${NUTAPP_SIGNING_KEY:-}" ]; then
		sign_file "$NUTAPP_SIGNING_KEY" "$image" "$image.sig"
		log "signed: $image.sig"
	fi
}

main "$@"
