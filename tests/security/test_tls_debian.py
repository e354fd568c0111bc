"""Interoperability over TLS with Debian's NSS-built NUT 2.8.0: its upsmon
logs in to our upsd over verified STARTTLS; our clients talk TLS to its
upsd."""

import os
import subprocess
import sys

import pytest

from certs import hash_dir, issue, make_ca, write_certfile
from debian import (DebianStack, DebianUpsmon, have_debian_nut, nss_server_db,
                    nss_trust_db, wait_for)
from ports import free_port
from stack import UPS, Line

pytestmark = pytest.mark.skipif(not have_debian_nut(),
                                reason="Debian's nut-client/nut-server and libnss3-tools")

USERS = "[mon]\n\tpassword = monpw\n\tupsmon secondary\n" \
        "[admin]\n\tpassword = adminpw\n\tinstcmds = ALL\n\tactions = SET\n"


@pytest.fixture
def our_tls_stack(stacks):
    def make(ca, name, kind="ec"):
        s = stacks(users=USERS)
        certfile = write_certfile(os.path.join(s.etc, "upsd.pem"), issue(ca, name, kind=kind))
        s.put("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\nREQUIRE_TLS 1\n"
                           % (s.port, certfile))
        return s.start()
    return make


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_debian_upsmon_logs_in_over_verified_tls(our_tls_stack, base, kind):
    ca = make_ca(kind=kind)
    s = our_tls_stack(ca, "ups.example", kind)
    db = nss_trust_db(os.path.join(base, "nssdb"), ca)
    mon = DebianUpsmon(base, "%s@127.0.0.1:%d" % (UPS, s.port), "mon", "monpw", db,
                       "ups.example")
    try:
        mon.start(s.state)
        wait_for(lambda: "logged into UPS [%s] (TLS)" % UPS in s.log(),
                 "upsmon's TLS login in our upsd's log",
                 details=lambda: mon.log() + s.log())
        assert "User mon@127.0.0.1 logged into UPS [%s] (TLS)" % UPS in s.log()
        with Line("127.0.0.1", s.port) as c:
            assert c.ask("GET NUMLOGINS %s" % UPS) == "NUMLOGINS %s 1" % UPS
            c.send("LIST CLIENT %s" % UPS)
            assert [c.readline() for _ in range(3)] == [
                "BEGIN LIST CLIENT %s" % UPS, "CLIENT %s 127.0.0.1" % UPS,
                "END LIST CLIENT %s" % UPS]
    finally:
        mon.stop()


def test_debian_upsmon_refuses_a_wrong_certificate_name(our_tls_stack, base):
    ca = make_ca()
    s = our_tls_stack(ca, "ups.example")
    db = nss_trust_db(os.path.join(base, "nssdb"), ca)
    mon = DebianUpsmon(base, "%s@127.0.0.1:%d" % (UPS, s.port), "mon", "monpw", db,
                       "not-the-ups.example")
    try:
        mon.start(s.state)
        wait_for(lambda: "Certificate" in mon.log() or "certificate" in mon.log(),
                 "upsmon's certificate complaint", details=mon.log)
    finally:
        mon.stop()
    assert "logged into UPS" not in s.log()


@pytest.fixture
def debian_tls_upsd(base):
    ca = make_ca()
    port = free_port()
    leaf = issue(ca, "ups.example", sans=["ups.example", "127.0.0.1"])
    db = nss_server_db(os.path.join(base, "upsd-nssdb"), ca, leaf, "ups.example")
    d = DebianStack(os.path.join(base, "debian"), port,
                    'CERTPATH %s\nCERTIDENT "ups.example" ""\n' % db,
                    "[admin]\n\tpassword = adminpw\n\tinstcmds = ALL\n\tactions = SET\n")
    d.start()
    d.ca = ca
    d.hashdir = hash_dir(os.path.join(base, "pem-certs"), ca)
    yield d
    d.stop()


def _our(tool_argv, env):
    e = dict(os.environ)
    e.update(env)
    return subprocess.run([sys.executable, "-m", "nutapp"] + tool_argv, env=e,
                          capture_output=True, text=True, timeout=30)


def test_our_clients_talk_tls_to_debian_upsd(debian_tls_upsd):
    d = debian_tls_upsd
    target = "%s@127.0.0.1:%d" % (UPS, d.port)
    env = dict(NUT_CERTPATH=d.hashdir, NUT_CERTVERIFY="1", NUT_FORCESSL="1",
               NUT_CERTHOST="127.0.0.1=ups.example:1:1")

    def ready():
        r = _our(["upsc", target, "ups.status"], env)
        return r if r.returncode == 0 and r.stdout == "OL\n" else None

    r = wait_for(ready, "upsc over TLS to Debian's upsd", details=d.log)
    assert r.stdout == "OL\n"
    r = _our(["upsrw", "-s", "ups.delay.shutdown=30", "-u", "admin", "-p", "adminpw",
              target], env)
    assert r.returncode == 0, r.stderr
    # Same server, wrong expected name: refused, naming the cause.
    bad = dict(env, NUT_CERTHOST="127.0.0.1=elsewhere.example:1:1")
    r = _our(["upsc", target, "ups.status"], bad)
    assert r.returncode != 0 and "does not match" in r.stderr
