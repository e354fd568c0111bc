#!/usr/bin/env bash
# nutapp's one entry point.
#
#   ./build.sh demo            set up, then run upsd + a simulated UPS on localhost
#   ./build.sh test [args]     set up, then run the whole test suite (args go to pytest)
#   ./build.sh image [board]   build the appliance image offline (qemu, rpi3, rpi4)
#   ./build.sh verify <image>  check an image against SHA256SUMS and its signature
#   ./build.sh setup           only install what the above need
#
# Set-up is idempotent: Debian packages listed in tests/apt-packages.txt (and
# tests/*/apt-packages.txt, board/debian/apt-packages.txt) are
# installed when missing (as root), and a virtualenv in .venv gets nutapp
# with its test extras.
set -eu

top=$(cd "$(dirname "$0")" && pwd)
venv="${NUTAPP_VENV:-$top/.venv}"

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

wanted_packages() {
	local f
	for f in "$@"; do
		[ -f "$f" ] && sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$f"
	done
}

# The packages of the lists given that are not installed yet, one a line.
missing_packages() {
	local p
	for p in $(wanted_packages "$@"); do
		case "$p" in
		*:*) dpkg --add-architecture "${p##*:}" 2>/dev/null || true ;;
		esac
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			echo "$p"
	done
}

install_apt() {
	local missing=()
	mapfile -t missing < <(missing_packages "$@")
	[ "${#missing[@]}" -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "apt-get not found; install: ${missing[*]}"
	[ "$(id -u)" -eq 0 ] || die "run as root, or install first: ${missing[*]}"
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

host_python() {
	# Debian's own interpreter first: it is what a fresh machine has.
	local py
	for py in /usr/bin/python3 python3; do
		command -v "$py" >/dev/null && { echo "$py"; return; }
	done
	die "python3 not found"
}

setup_venv() {
	if [ ! -x "$venv/bin/python" ]; then
		log "creating $venv"
		"$(host_python)" -m venv "$venv"
	fi
	local stamp="$venv/.nutapp-installed" src
	src=$(sha256sum <"$top/pyproject.toml" | cut -d' ' -f1)
	if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$src" ]; then
		log "installing nutapp and its test dependencies into $venv"
		"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
		"$venv/bin/python" -m pip install -q -e "${top}[test]"
		echo "$src" >"$stamp"
	fi
}

# Packages that bring a daemon (avahi-daemon for test_mdns.py). Where systemd
# runs, installing one enables and starts it on the host's real network, so
# there they are left to the user and the tests needing them skip. Elsewhere
# (CI's machines run no init) they are installed with policy-rc.d refusing
# every start, so nothing runs but what the tests start in their namespaces.
install_daemons() {
	local want
	want=$(missing_packages "$@" | tr '\n' ' ')
	[ -n "$want" ] || return 0
	if [ -d /run/systemd/system ]; then
		log "systemd runs here: not installing $want(the tests that need them skip)"
		return 0
	fi
	local policy=/usr/sbin/policy-rc.d own=
	if [ "$(id -u)" -eq 0 ] && [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own=1
	fi
	install_apt "$@" || { [ -z "$own" ] || rm -f "$policy"; return 1; }
	[ -z "$own" ] || rm -f "$policy"
}

setup() {
	install_apt "$top/tests/apt-packages.txt" "$top"/tests/*/apt-packages.txt "$@"
	setup_venv
}

cmd_test() {
	setup "$top/board/debian/apt-packages.txt"
	install_daemons "$top"/tests/*/apt-daemons.txt
	cd "$top"
	local rc=0
	"$venv/bin/python" -m pytest "$@" || rc=$?
	# pytest's 5 means "no tests collected": a run that tested nothing fails.
	[ "$rc" -eq 5 ] && log "no tests were collected"
	return "$rc"
}

cmd_demo() {
	setup
	exec "$venv/bin/python" -m nutapp.demo "$@"
}

cmd_image() {
	setup "$top/board/debian/apt-packages.txt"
	exec "$top/board/debian/build-image.sh" "$@"
}

cmd_verify() {
	[ "$#" -ge 1 ] || die "usage: ./build.sh verify <image>"
	exec "$top/board/debian/verify-image.sh" "$@"
}

main() {
	local cmd="${1:-}"
	[ "$#" -gt 0 ] && shift
	case "$cmd" in
	demo) cmd_demo "$@" ;;
	test) cmd_test "$@" ;;
	image) cmd_image "$@" ;;
	verify) cmd_verify "$@" ;;
	setup) setup ;;
	*) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
}

main "$@"
