#!/usr/bin/env bash
# Check a nutapp image before flashing it.
#
#   board/debian/verify-image.sh IMAGE [PUBLIC_KEY.pem]
#
# The image's SHA-256 must match its line in SHA256SUMS beside it. When a
# public key is given (argument, NUTAPP_VERIFY_KEY, or board/keys/nutapp.pub
# in this tree), IMAGE.sig must be a good signature of the image by the
# matching private key (see board/common/sign.sh). Exit status 0 only when
# every check that could run passed.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=board/common/sign.sh
. "$top/board/common/sign.sh"

log() { printf 'verify: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

check_sum() {
	local image="$1" dir name sums line
	dir=$(cd "$(dirname "$image")" && pwd)
	name=$(basename "$image")
	sums="$dir/SHA256SUMS"
	[ -f "$sums" ] || die "no SHA256SUMS beside $image"
	line=$(grep "  $name\$" "$sums" || true)
	[ -n "$line" ] || die "$name is not listed in $sums"
	(cd "$dir" && printf '%s\n' "$line" | sha256sum --check --quiet --strict) ||
		die "$name does not match its SHA-256 in $sums"
	log "checksum OK: $name"
}

check_signature() {
	local image="$1" key="$2"
	[ -f "$image.sig" ] || die "no signature $image.sig to check with $key"
	verify_file "$key" "$image" "$image.sig" ||
		die "BAD signature: $image.sig does not match $key"
	log "signature OK: $image.sig ($key)"
}

main() {
	if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
		die "usage: $0 IMAGE [PUBLIC_KEY.pem]"
	fi
	local image="$1" key="${2:-${NUTAPP_VERIFY_KEY:-}}"
	[ -f "$image" ] || die "no such image: $image"
	if [ -z "$key" ] && [ -f "$top/board/keys/nutapp.pub" ]; then
		key="$top/board/keys/nutapp.pub"
	fi
	check_sum "$image"
	if [ -n "$key" ]; then
		check_signature "$image" "$key"
	elif [ -f "$image.sig" ]; then
		log "signature NOT checked: give the public key (argument or NUTAPP_VERIFY_KEY)"
	fi
}

main "$@"
