"""Password hashes for upsd.users.

NUT keeps passwords in upsd.users as plain text. nutapp's upsd also accepts
a hashed value, so that a stolen SD card or a copied config does not give
away the passwords::

    password = "$scrypt$n=16384,r=8,p=1$<salt, base64>$<hash, base64>"

scrypt comes with Python's hashlib (OpenSSL) and is memory-hard, which
makes guessing on a GPU expensive. `verify_password` also accepts a stored
plain-text value (NUT's own format), compared in constant time;
`is_hashed` and `is_plaintext` tell the two apart so a tool can warn.

`nutapp passwd` prints the line to paste into upsd.users.
"""

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import sys

PREFIX = "$scrypt$"

# Cost parameters of new hashes: 16 MiB of memory, about 50 ms on a
# Raspberry Pi 4. Stored hashes carry their own parameters.
N, R, P = 16384, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32

# Refuse stored parameters that would make one login eat the memory of a
# small board (n * r * 128 bytes).
_MAX_MEMORY = 64 * 1024 * 1024


def hash_password(password, n=N, r=R, p=P, salt=None):
    """The ``$scrypt$...`` string for `password` (str), with a random salt."""
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p, HASH_BYTES)
    return "%sn=%d,r=%d,p=%d$%s$%s" % (PREFIX, n, r, p, _b64(salt), _b64(digest))


def is_hashed(stored):
    """True when `stored` is a ``$scrypt$`` hash, False for plain text."""
    return stored.startswith(PREFIX)


def is_plaintext(stored):
    """True when `stored` is NUT's plain-text password, not a hash."""
    return not is_hashed(stored)


def verify_password(stored, given):
    """Whether `given` matches `stored` (a hash, or NUT's plain text).

    Constant time in the content of `given`. A malformed hash never
    matches: it is not taken for a plain-text password either.
    """
    if not is_hashed(stored):
        return hmac.compare_digest(stored.encode("utf-8"), given.encode("utf-8"))
    parsed = parse_hash(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    candidate = _scrypt(given, salt, n, r, p, len(digest))
    return hmac.compare_digest(candidate, digest)


def parse_hash(stored):
    """``(n, r, p, salt, digest)`` of a ``$scrypt$`` string, or None if malformed."""
    if not is_hashed(stored):
        return None
    parts = stored[len(PREFIX):].split("$")
    if len(parts) != 3:
        return None
    params, salt, digest = parts
    try:
        fields = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(fields["n"]), int(fields["r"]), int(fields["p"])
        salt = base64.b64decode(salt, validate=True)
        digest = base64.b64decode(digest, validate=True)
    except (ValueError, KeyError):
        return None
    if set(fields) != {"n", "r", "p"} or n < 2 or n & (n - 1) or r < 1 or p < 1:
        return None
    if n * r * 128 > _MAX_MEMORY or p > 16 or not salt or len(digest) < 16:
        return None
    return n, r, p, salt, digest


def _scrypt(password, salt, n, r, p, length):
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
        maxmem=_MAX_MEMORY + 1024 * 1024, dklen=length,
    )


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


def main(argv=None, prog="nutapp passwd"):
    """Read a password (twice, from the terminal, or one line from stdin)
    and print the ``password = "..."`` line for upsd.users."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Print a hashed password line to paste into upsd.users.",
    )
    parser.add_argument(
        "--verify", metavar="HASH",
        help="instead, check a password read from stdin against HASH (exit 0 if it matches)",
    )
    args = parser.parse_args(argv)

    if args.verify is not None:
        given = _read_password(confirm=False)
        return 0 if verify_password(args.verify, given) else 1

    password = _read_password(confirm=True)
    if password is None:
        sys.stderr.write("%s: the passwords do not match\n" % prog)
        return 1
    if not password:
        sys.stderr.write("%s: empty password\n" % prog)
        return 1
    if any(ch.isspace() for ch in password):
        # NUT's clients send PASSWORD unquoted: a space cuts the password.
        sys.stderr.write("%s: NUT clients cannot send a password with spaces\n" % prog)
        return 1
    sys.stdout.write('password = "%s"\n' % hash_password(password))
    return 0


def _read_password(confirm):
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Again: ") != first:
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")
