"""The SSH server's host key: made once, kept, and shown to the person.

The appliance runs Dropbear only when provisioning installed SSH public
keys. Its host key is made with ``dropbearkey`` on the first start and kept
on the data partition (a folder and file only root can read), so it stays
the same across boots and image updates. Its SHA-256 fingerprint, the form
``ssh`` shows on a first connection, and the public key itself (a
``known_hosts`` line) are written to the boot partition's settings folder
next to SERVER-CERTIFICATE.pem, so the person can check that first
connection. The boot partition is written only when that file is missing
or out of date: an ordinary boot writes nothing.

    nutapp ssh-hostkeys --keys /data/ssh --boot /boot/nut
"""

import argparse
import base64
import hashlib
import os
import subprocess
import sys

from nutapp.sdcard import fsync_folder, writable, write_atomic

KEY_TYPES = ("ed25519",)
FINGERPRINT_FILE = "SSH-HOST-KEYS.txt"
DROPBEARKEY = "dropbearkey"


class HostKeyError(Exception):
    pass


def key_path(folder, kind):
    return os.path.join(folder, "dropbear_%s_host_key" % kind)


def ensure_keys(folder, make, kinds=KEY_TYPES):
    """Make every missing host key in `folder` (0700) with `make(kind,
    path)`; return the key files' paths and whether any was made."""
    paths = [key_path(folder, kind) for kind in kinds]
    missing = [(kind, path) for kind, path in zip(kinds, paths) if not os.path.isfile(path)]
    if not missing and _private(folder):
        return paths, False
    with writable(os.path.dirname(os.path.abspath(folder))):
        os.makedirs(folder, 0o700, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(folder, 0, 0)
        os.chmod(folder, 0o700)
        for kind, path in missing:
            tmp = path + ".new"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            make(kind, tmp)
            os.chmod(tmp, 0o600)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.rename(tmp, path)
        fsync_folder(folder)
    return paths, bool(missing)


def _private(folder):
    st = os.stat(folder)
    return st.st_mode & 0o077 == 0


def dropbear_make(kind, path):
    subprocess.run([DROPBEARKEY, "-t", kind, "-f", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def dropbear_public(path):
    """The OpenSSH public key line (type and key, no comment) of a
    Dropbear private key file."""
    out = subprocess.run([DROPBEARKEY, "-y", "-f", path], check=True, capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].startswith(("ssh-", "ecdsa-")):
            return "%s %s" % (words[0], words[1])
    raise HostKeyError("dropbearkey gave no public key for %s" % path)


def fingerprint(public_line):
    """``SHA256:...`` of an OpenSSH public key line, as ``ssh`` shows it."""
    blob = base64.b64decode(public_line.split()[1], validate=True)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def fingerprint_text(public_lines):
    """The boot partition's note about the host keys (CRLF: read on any
    computer)."""
    lines = ["SSH host key of this appliance.",
             "On your first SSH connection, check that the fingerprint your SSH",
             "client shows is this one:", ""]
    for public in public_lines:
        kind = public.split()[0]
        lines.append("  %s key fingerprint is %s" % (_kind_name(kind), fingerprint(public)))
    lines += ["", "Or add this line to your ~/.ssh/known_hosts, with HOST replaced by",
              "the name or address you connect to:", ""]
    lines += ["HOST %s" % public for public in public_lines]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _kind_name(kind):
    return {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA"}.get(
        kind, kind.split("-")[0].upper())


def publish(boot, text):
    """Write the note into the boot folder unless it already says `text`;
    return whether it was written."""
    path = os.path.join(boot, FINGERPRINT_FILE)
    try:
        with open(path, "rb") as f:
            if f.read(65536) == text:
                return False
    except OSError:
        pass
    with writable(boot):
        write_atomic(path, text, 0o644)
    return True


def main(argv=None, prog="nutapp ssh-hostkeys"):
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Make the SSH server's host key once, keep it, and leave its fingerprint "
        "in the boot folder."))
    parser.add_argument("--keys", default="/data/ssh", metavar="DIR",
                        help="where the host keys are kept (default %(default)s)")
    parser.add_argument("--boot", default="/boot/nut", metavar="DIR",
                        help="the boot partition's settings folder (default %(default)s)")
    args = parser.parse_args(argv)

    try:
        paths, made = ensure_keys(args.keys, dropbear_make)
        text = fingerprint_text([dropbear_public(p) for p in paths])
    except (OSError, subprocess.CalledProcessError, HostKeyError) as e:
        sys.stderr.write("%s: cannot prepare the SSH host key: %s\n" % (prog, e))
        return 1
    if made:
        sys.stderr.write("%s: made a new SSH host key in %s\n" % (prog, args.keys))
    for path in paths:
        print(path)
    if os.path.isdir(args.boot):
        try:
            if publish(args.boot, text):
                sys.stderr.write("%s: wrote its fingerprint to %s\n" % (
                    prog, os.path.join(args.boot, FINGERPRINT_FILE)))
        except (OSError, subprocess.CalledProcessError) as e:
            sys.stderr.write("%s: cannot write the fingerprint to %s: %s\n"
                             % (prog, args.boot, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
