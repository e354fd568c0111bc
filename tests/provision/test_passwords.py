import io
import sys

import pytest

from nutapp import passwords
from nutapp.core.parseconf import parse_text
from nutapp.passwords import hash_password, is_hashed, parse_hash, verify_password


def test_hash_verifies_and_is_salted():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b  # random salt
    assert a.startswith("$scrypt$n=16384,r=8,p=1$")
    assert verify_password(a, "correct horse")
    assert not verify_password(a, "correct hors")
    assert not verify_password(a, "")


def test_known_vector_pins_the_format():
    # scrypt of "secret" with an all-zero salt; what upsd and this module
    # must agree on byte for byte.
    stored = hash_password("secret", salt=bytes(16))
    assert stored == (
        "$scrypt$n=16384,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$"
        + stored.rsplit("$", 1)[1])
    import base64
    import hashlib

    digest = hashlib.scrypt(b"secret", salt=bytes(16), n=16384, r=8, p=1, dklen=32)
    assert stored.rsplit("$", 1)[1] == base64.b64encode(digest).decode()


def test_plain_text_still_verifies():
    assert not is_hashed("mypass")
    assert verify_password("mypass", "mypass")
    assert not verify_password("mypass", "mypast")
    assert not verify_password("mypass", "mypass ")


Z16, Z32 = "A" * 22 + "==", "A" * 43 + "="  # 16 and 32 zero bytes in base64


@pytest.mark.parametrize("stored", [
    "$scrypt$",
    "$scrypt$n=16384,r=8,p=1$AAAA",
    "$scrypt$n=1000,r=8,p=1$%s$%s" % (Z16, Z32),  # n not a power of two
    "$scrypt$n=16384,r=8$%s$%s" % (Z16, Z32),  # no p
    "$scrypt$n=1048576,r=8,p=1$%s$%s" % (Z16, Z32),  # 1 GiB of memory
    "$scrypt$n=16384,r=8,p=1$!!!!$%s" % Z32,  # salt not base64
])
def test_malformed_hash_never_matches(stored):
    assert is_hashed(stored)
    assert parse_hash(stored) is None
    assert not verify_password(stored, stored)
    assert not verify_password(stored, "")


def test_hash_survives_nut_grammar():
    stored = hash_password("x" * 12)
    lines = parse_text('[admin]\n\tpassword = "%s"\n' % stored)
    assert lines[1][1] == ["password", "=", stored]


def run_passwd(monkeypatch, capsys, stdin, *argv):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = passwords.main(list(argv), prog="nutapp passwd")
    return rc, capsys.readouterr()


def test_passwd_prints_a_line_to_paste(monkeypatch, capsys):
    rc, out = run_passwd(monkeypatch, capsys, "hunter2hunter2\n")
    assert rc == 0
    line = out.out.strip()
    assert line.startswith('password = "$scrypt$') and line.endswith('"')
    stored = parse_text(line)[0][1][2]
    assert verify_password(stored, "hunter2hunter2")
    rc, _ = run_passwd(monkeypatch, capsys, "hunter2hunter2\n", "--verify", stored)
    assert rc == 0
    rc, _ = run_passwd(monkeypatch, capsys, "hunter3hunter3\n", "--verify", stored)
    assert rc == 1


def test_passwd_refuses_spaces_and_empty(monkeypatch, capsys):
    rc, out = run_passwd(monkeypatch, capsys, "two words\n")
    assert rc == 1 and "spaces" in out.err and not out.out
    rc, out = run_passwd(monkeypatch, capsys, "\n")
    assert rc == 1 and "empty" in out.err
