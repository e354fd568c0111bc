#!/bin/sh
# Boot the nutapp_qemu_aarch64_virt_defconfig image in QEMU, serial
# console on this terminal. NUT clients on this machine reach upsd at
# 127.0.0.1:$NUTAPP_QEMU_PORT (3493 unless set); with
# NUTAPP_QEMU_SSH_PORT set, SSH (when keys are provisioned) at
# 127.0.0.1:$NUTAPP_QEMU_SSH_PORT. Extra arguments go to QEMU (a UPS:
# -device usb-host,vendorid=0x...,productid=0x...). The host gives the
# guest entropy (virtio-rng), as a Pi's hardware generator does, so that
# TLS and the SSH host key do not wait for the kernel's random pool.
#
# Runs from output/images, where post-image.sh installs it.
set -eu

images=$(cd "$(dirname "$0")" && pwd)
port=${NUTAPP_QEMU_PORT:-3493}
forwards="hostfwd=tcp:127.0.0.1:$port-:3493"
if [ -n "${NUTAPP_QEMU_SSH_PORT:-}" ]; then
	forwards="$forwards,hostfwd=tcp:127.0.0.1:$NUTAPP_QEMU_SSH_PORT-:22"
fi
qemu="qemu-system-aarch64"
if [ -x "$images/../host/bin/$qemu" ]; then
	qemu="$images/../host/bin/$qemu"
fi

exec "$qemu" -M virt -cpu cortex-a53 -m 512 -nographic \
	-kernel "$images/Image" \
	-append "$(cat "$images/cmdline.txt")" \
	-drive "file=$images/sdcard.img,format=raw,if=none,id=hd0" \
	-device virtio-blk-pci,drive=hd0 \
	-netdev "user,id=n0,$forwards" \
	-device virtio-net-pci,netdev=n0,romfile= \
	-device virtio-rng-pci \
	-device qemu-xhci \
	"$@"
