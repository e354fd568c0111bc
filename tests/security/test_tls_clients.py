"""TLS on our clients (upsc, upscmd, upsrw) against our upsd: CERTPATH as a
<hash>.0 directory or a bundle, CERTVERIFY, FORCESSL, CERTHOST with per-host
flags, a client certificate; each refusal names its cause."""

import datetime
import os
import subprocess
import sys

import pytest

from certs import NOW, hash_dir, issue, make_ca, write_certfile, write_pem
from stack import UPS, secure

USERS = "[admin]\n\tpassword = adminpw\n\tactions = SET\n\tinstcmds = ALL\n"


@pytest.fixture
def pki(base):
    ca = make_ca("upsd CA")
    d = os.path.join(base, "pki")
    os.makedirs(d)
    os.chmod(d, 0o755)
    return {"ca": ca, "dir": d, "hashdir": hash_dir(os.path.join(d, "certs"), ca),
            "bundle": write_pem(os.path.join(d, "bundle.pem"), make_ca("unrelated"), ca)}


def start(stacks, leaf, conf=""):
    s = stacks(users=USERS)
    certfile = write_certfile(os.path.join(s.etc, "upsd.pem"), leaf)
    s.put("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\n%s" % (s.port, certfile, conf))
    return s.start()


def tool(stack, argv, **env):
    e = stack.env()
    for k in list(e):
        if k.startswith("NUT_CERT") or k in ("NUT_FORCESSL", "NUT_CLIENTCONF", "NUT_KEYFILE"):
            del e[k]
    e.update(env)
    r = subprocess.run([sys.executable, "-m", "nutapp"] + argv, env=e, capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def upsc(stack, **env):
    return tool(stack, ["upsc", "%s@127.0.0.1:%d" % (UPS, stack.port), "ups.status"], **env)


@pytest.mark.parametrize("where", ["hashdir", "bundle"])
def test_verified_tls(stacks, pki, where):
    s = start(stacks, issue(pki["ca"], "127.0.0.1"))
    rc, out = upsc(s, NUT_CERTPATH=pki[where], NUT_CERTVERIFY="1")
    assert (rc, out) == (0, "OL\n")
    assert "client 127.0.0.1: TLS on" in s.log()


def test_wrong_name_is_refused(stacks, pki):
    s = start(stacks, issue(pki["ca"], "other.example"))
    rc, out = upsc(s, NUT_CERTPATH=pki["hashdir"], NUT_CERTVERIFY="1")
    assert rc != 0 and "certificate name does not match the expected name" in out


def test_expired_certificate_is_refused(stacks, pki):
    leaf = issue(pki["ca"], "127.0.0.1", not_before=NOW - datetime.timedelta(days=30),
                 not_after=NOW - datetime.timedelta(days=1))
    s = start(stacks, leaf)
    rc, out = upsc(s, NUT_CERTPATH=pki["hashdir"], NUT_CERTVERIFY="1")
    assert rc != 0 and "certificate has expired" in out


def test_unknown_ca_is_refused(stacks, pki):
    s = start(stacks, issue(make_ca("a CA nobody trusts"), "127.0.0.1"))
    rc, out = upsc(s, NUT_CERTPATH=pki["hashdir"], NUT_CERTVERIFY="1")
    assert rc != 0 and "not signed by a CA in CERTPATH" in out


def test_forcessl_refuses_a_server_without_tls(stacks, pki):
    s = stacks(users=USERS).start()
    rc, out = upsc(s, NUT_FORCESSL="1")
    assert rc != 0 and "does not offer TLS" in out and "FORCESSL" in out
    assert upsc(s) == (0, "OL\n")  # without it, plaintext is the client's choice


def test_certhost_per_host_name_and_flags(stacks, pki):
    s = start(stacks, issue(pki["ca"], "ups.example"))
    host = "127.0.0.1:%d" % s.port
    ok = upsc(s, NUT_CERTPATH=pki["hashdir"], NUT_CERTHOST="%s=ups.example:1:1" % host)
    assert ok == (0, "OL\n")
    rc, out = upsc(s, NUT_CERTPATH=pki["hashdir"], NUT_CERTHOST="127.0.0.1=nas.example:1:1")
    assert rc != 0 and "'nas.example'" in out
    # verify 0 for this host: encrypted, unchecked, even with a wrong name.
    assert upsc(s, NUT_CERTPATH=pki["hashdir"], NUT_CERTVERIFY="1",
                NUT_CERTHOST="127.0.0.1=nas.example:0:1") == (0, "OL\n")


def test_settings_from_upsmon_conf(stacks, pki):
    s = start(stacks, issue(pki["ca"], "ups.example"))
    conf = s.put("upsmon.conf", 'CERTPATH %s\nCERTVERIFY 1\nFORCESSL 1\n'
                                'CERTHOST "127.0.0.1" "ups.example" 1 1\n' % pki["hashdir"])
    assert upsc(s) == (0, "OL\n")  # upsmon.conf in NUT_CONFPATH, read by root
    s.put("upsmon.conf", 'CERTPATH %s\nCERTVERIFY 1\n'
                         'CERTHOST "127.0.0.1" "wrong.example" 1 1\n' % pki["hashdir"])
    rc, out = upsc(s)
    assert rc != 0 and "'wrong.example'" in out
    os.unlink(conf)
    other = os.path.join(pki["dir"], "client.conf")
    with open(other, "w") as f:
        f.write('CERTPATH %s\nCERTHOST "127.0.0.1" "ups.example" 1 1\n' % pki["bundle"])
    assert upsc(s, NUT_CLIENTCONF=other) == (0, "OL\n")


def test_client_certificate_for_certrequest_require(stacks, pki):
    client_ca = make_ca("client CA", kind="rsa")
    cadir = hash_dir(os.path.join(pki["dir"], "clientcas"), client_ca)
    s = start(stacks, issue(pki["ca"], "127.0.0.1"),
              "CERTREQUEST REQUIRE\nCERTPATH %s\n" % cadir)
    me = issue(client_ca, "upsc-user", client=True)
    cert = write_pem(os.path.join(pki["dir"], "me.crt"), me)
    key = os.path.join(pki["dir"], "me.key")
    with open(key, "wb") as f:
        f.write(me.key_pem())
    secure(key, 0o600)
    common = dict(NUT_CERTPATH=pki["hashdir"], NUT_CERTVERIFY="1")
    assert upsc(s, NUT_CERTFILE=cert, NUT_KEYFILE=key, **common) == (0, "OL\n")
    rc, out = upsc(s, **common)
    assert rc != 0 and "Error:" in out
    assert "certificate upsc-user" in s.log()


def test_upscmd_and_upsrw_over_verified_tls(stacks, pki):
    s = start(stacks, issue(pki["ca"], "127.0.0.1"), "REQUIRE_TLS 1\n")
    target = "%s@127.0.0.1:%d" % (UPS, s.port)
    env = dict(NUT_CERTPATH=pki["hashdir"], NUT_CERTVERIFY="1")
    rc, out = tool(s, ["upscmd", "-u", "admin", "-p", "adminpw", target, "beeper.disable"],
                   **env)
    assert rc == 0, out
    rc, out = tool(s, ["upsrw", "-s", "ups.delay.shutdown=30", "-u", "admin", "-p",
                       "adminpw", target], **env)
    assert rc == 0, out
    # Without TLS the same credentials are refused before they are used.
    rc, out = tool(s, ["upscmd", "-u", "admin", "-p", "adminpw", target, "beeper.disable"])
    assert rc != 0 and "Access denied" in out


def test_bad_local_settings_are_reported(stacks, pki):
    s = start(stacks, issue(pki["ca"], "127.0.0.1"))
    empty = os.path.join(pki["dir"], "empty")
    os.makedirs(empty)
    rc, out = upsc(s, NUT_CERTPATH=empty, NUT_CERTVERIFY="1")
    assert rc != 0 and "holds no CA certificates" in out
    rc, out = upsc(s, NUT_CERTVERIFY="1")
    assert rc != 0 and "no CERTPATH" in out
