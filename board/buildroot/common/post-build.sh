#!/bin/sh
# Finish the target tree of a nutapp image before it is packed into the
# read-only squashfs root.
#
# Buildroot calls it as: post-build.sh <target dir> <board dir>, the
# board dir coming from BR2_ROOTFS_POST_SCRIPT_ARGS.
set -eu

main() {
	target=${1:?target dir}
	board=${2:?board dir (BR2_ROOTFS_POST_SCRIPT_ARGS)}

	echo "post-build.sh: $target for $(basename "$board")"
}

main "$@"
