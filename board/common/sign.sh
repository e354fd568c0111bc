# shellcheck shell=bash
# Signing helpers shared by board/debian/build-image.sh and verify-image.sh
# (sourced, not run). A detached signature IMAGE.sig is made with OpenSSL:
#   RSA or EC key: openssl dgst -sha256 (signature over the SHA-256 digest)
#   Ed25519 key:   openssl pkeyutl -rawin (Ed25519 hashes the image itself)
# Keys are PEM files; the public key is what `openssl pkey -pubout` gives.

# key_is_ed25519 PEM [-pubin]: whether the key is an Ed25519 key.
key_is_ed25519() {
	openssl pkey ${2:+"$2"} -in "$1" -noout -text 2>/dev/null | head -n1 |
		grep -q ED25519
}

# sign_file KEY FILE SIG
sign_file() {
	if key_is_ed25519 "$1"; then
		openssl pkeyutl -sign -inkey "$1" -rawin -in "$2" -out "$3"
	else
		openssl dgst -sha256 -sign "$1" -out "$3" "$2"
	fi
}

# verify_file PUBKEY FILE SIG: exit status 0 when the signature is good.
verify_file() {
	if key_is_ed25519 "$1" -pubin; then
		openssl pkeyutl -verify -pubin -inkey "$1" -rawin -in "$2" \
			-sigfile "$3" >/dev/null
	else
		openssl dgst -sha256 -verify "$1" -signature "$3" "$2" >/dev/null
	fi
}
