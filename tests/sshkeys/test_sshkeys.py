"""The SSH host key is made once, kept private, and its fingerprint left in
the boot folder only when it changed. OpenSSH's ssh-keygen makes the keys
here (the image uses Dropbear's dropbearkey, exercised by the QEMU test)
and is the reference for the fingerprint."""

import os
import shutil
import subprocess

import pytest

from nutapp import sshkeys

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None,
                                reason="needs ssh-keygen (openssh-client)")


def keygen_make(kind, path):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path], check=True)


def keygen_public(path):
    return " ".join(open(path + ".pub").read().split()[:2])


def test_keys_are_made_once_and_kept_private(tmp_path):
    folder = str(tmp_path / "ssh")
    made = []

    def make(kind, path):
        made.append(kind)
        keygen_make(kind, path)

    paths, new = sshkeys.ensure_keys(folder, make)
    assert new and made == ["ed25519"]
    assert paths == [os.path.join(folder, "dropbear_ed25519_host_key")]
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert os.stat(paths[0]).st_mode & 0o777 == 0o600
    before = open(paths[0], "rb").read()

    paths, new = sshkeys.ensure_keys(folder, make)
    assert not new and made == ["ed25519"]
    assert open(paths[0], "rb").read() == before


def test_a_folder_others_can_read_is_closed_again(tmp_path):
    folder = tmp_path / "ssh"
    sshkeys.ensure_keys(str(folder), keygen_make)
    os.chmod(folder, 0o755)
    sshkeys.ensure_keys(str(folder), keygen_make)
    assert os.stat(folder).st_mode & 0o777 == 0o700


def test_the_fingerprint_is_what_ssh_keygen_shows(tmp_path):
    key = str(tmp_path / "key")
    keygen_make("ed25519", key)
    shown = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", key + ".pub"],
                           check=True, capture_output=True, text=True).stdout.split()[1]
    assert sshkeys.fingerprint(keygen_public(key)) == shown


def test_the_note_is_written_only_when_it_changes(tmp_path):
    key = str(tmp_path / "key")
    keygen_make("ed25519", key)
    public = keygen_public(key)
    text = sshkeys.fingerprint_text([public])
    boot = tmp_path / "boot"
    boot.mkdir()
    assert sshkeys.publish(str(boot), text)
    note = (boot / sshkeys.FINGERPRINT_FILE).read_bytes()
    assert note == text and b"\r\n" in note
    assert sshkeys.fingerprint(public).encode() in note
    assert ("HOST %s\r\n" % public).encode() in note
    mtime = os.stat(boot / sshkeys.FINGERPRINT_FILE).st_mtime_ns
    assert not sshkeys.publish(str(boot), text)
    assert os.stat(boot / sshkeys.FINGERPRINT_FILE).st_mtime_ns == mtime
