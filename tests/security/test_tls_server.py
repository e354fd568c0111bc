"""upsd's TLS: STARTTLS with CERTFILE, CERTIDENT, the TLS 1.2 floor,
CERTREQUEST against CERTPATH, REQUIRE_TLS, and refusing to start on any TLS
setting it cannot honour."""

import os
import socket
import ssl

import pytest

from certs import hash_dir, issue, make_ca, write_certfile, write_pem
from stack import UPS, Line, insecure_client_context

USERS = "[admin]\n\tpassword = adminpw\n\tactions = SET\n\tinstcmds = ALL\n" \
        "[mon]\n\tpassword = monpw\n\tupsmon secondary\n"


def verifying_context(cafile, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert)
    return ctx


def tls_stack(stacks, leaf, conf="", password=None, users=USERS):
    s = stacks(users=users)
    certfile = write_certfile(os.path.join(s.etc, "upsd.pem"), leaf, password)
    s.put("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\n%s" % (s.port, certfile, conf))
    return s


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_starttls_then_login_inside_tls(stacks, base, kind):
    ca = make_ca(kind=kind)
    leaf = issue(ca, "ups.test", kind=kind)
    s = tls_stack(stacks, leaf).start()
    cafile = write_pem(os.path.join(base, "ca.pem"), ca)
    with Line("127.0.0.1", s.port) as c:
        tls = c.starttls(verifying_context(cafile), server_hostname="ups.test")
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        cipher = tls.cipher()[0]
        assert "GCM" in cipher or "CHACHA20" in cipher
        assert c.ask("STARTTLS") == "ERR ALREADY-SSL-MODE"
        assert c.login("mon", "monpw") == ("OK", "OK")
        assert c.ask("LOGIN %s" % UPS) == "OK"
    assert "logged into UPS [%s] (TLS)" % UPS in s.log()


def test_chain_then_key_with_an_intermediate(stacks, base):
    root = make_ca("root CA")
    mid = make_ca("intermediate CA", issuer=root)
    leaf = issue(mid, "ups.test")
    s = tls_stack(stacks, leaf).start()
    cafile = write_pem(os.path.join(base, "root.pem"), root)  # the root only
    with Line("127.0.0.1", s.port) as c:
        c.starttls(verifying_context(cafile), server_hostname="ups.test")
        assert c.ask("VER").startswith("Network UPS Tools upsd")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(stacks):
    s = tls_stack(stacks, issue(make_ca(), "ups.test")).start()
    old = insecure_client_context()
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with Line("127.0.0.1", s.port) as c:
        with pytest.raises((ssl.SSLError, OSError)):
            c.starttls(old)
    with Line("127.0.0.1", s.port) as c:  # the server goes on for others
        c.starttls(insecure_client_context())
        assert c.ask("NETVER") == "1.3"


def test_no_certfile_means_feature_not_configured(stacks):
    s = stacks(users=USERS).start()
    with Line("127.0.0.1", s.port) as c:
        assert c.ask("STARTTLS") == "ERR FEATURE-NOT-CONFIGURED"


def test_certident_name_and_key_password(stacks):
    leaf = issue(make_ca(), "ups.test", sans=["ups.test", "127.0.0.1"])
    s = tls_stack(stacks, leaf, 'CERTIDENT "ups.test" "k3y pass"\n', password="k3y pass")
    s.start()
    with Line("127.0.0.1", s.port) as c:
        c.starttls(insecure_client_context())
        assert c.ask("NETVER") == "1.3"


# -- settings that cannot be honoured stop the server --------------------------

def _refused(s):
    rc, out = s.run_upsd_to_exit()
    lines = [ln for ln in out.splitlines() if ln.startswith("upsd: ")]
    assert rc != 0, out
    # Nothing listens afterwards: no plaintext fallback.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
    return lines[-1]


def test_missing_certfile_stops_the_server(stacks):
    s = tls_stack(stacks, issue(make_ca(), "ups.test"))
    os.unlink(os.path.join(s.etc, "upsd.pem"))
    line = _refused(s)
    assert "CERTFILE" in line and "no such file" in line


def test_key_not_matching_stops_the_server(stacks):
    ca = make_ca()
    a, b = issue(ca, "ups.test"), issue(ca, "ups.test")
    s = tls_stack(stacks, a)
    with open(os.path.join(s.etc, "upsd.pem"), "wb") as f:
        f.write(a.pem() + b.key_pem())
    line = _refused(s)
    assert "does not belong to the certificate" in line


def test_world_readable_certfile_stops_the_server(stacks):
    s = tls_stack(stacks, issue(make_ca(), "ups.test"))
    path = os.path.join(s.etc, "upsd.pem")
    os.chmod(path, 0o644)
    line = _refused(s)
    assert path in line and "0644" in line and "chmod 0640 %s" % path in line


def test_certident_mismatch_stops_the_server(stacks):
    s = tls_stack(stacks, issue(make_ca(), "ups.test"), 'CERTIDENT "other.test" ""\n')
    line = _refused(s)
    assert "CERTIDENT 'other.test' does not match" in line and "ups.test" in line


def test_wrong_key_password_stops_the_server(stacks):
    leaf = issue(make_ca(), "ups.test")
    s = tls_stack(stacks, leaf, 'CERTIDENT "ups.test" "wrong"\n', password="right")
    line = _refused(s)
    assert "password does not open it" in line


def test_certrequest_without_certpath_stops_the_server(stacks):
    s = tls_stack(stacks, issue(make_ca(), "ups.test"), "CERTREQUEST REQUIRE\n")
    assert "CERTREQUEST needs CERTPATH" in _refused(s)


def test_nss_database_as_certpath_is_explained(stacks, base):
    nssdb = os.path.join(base, "nssdb")
    os.makedirs(nssdb)
    open(os.path.join(nssdb, "cert9.db"), "wb").close()
    s = tls_stack(stacks, issue(make_ca(), "ups.test"),
                  "CERTREQUEST REQUIRE\nCERTPATH %s\n" % nssdb)
    assert "is an NSS database" in _refused(s)


def test_require_tls_without_certfile_stops_the_server(stacks):
    s = stacks(users=USERS)
    s.put("upsd.conf", "LISTEN 127.0.0.1 %d\nREQUIRE_TLS 1\n" % s.port)
    assert "REQUIRE_TLS is set but CERTFILE is not" in _refused(s)


# -- REQUIRE_TLS ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["REQUIRE_TLS", "FORCESSL"])
def test_require_tls_refuses_credentials_in_clear(stacks, name):
    s = tls_stack(stacks, issue(make_ca(), "ups.test"), "%s 1\n" % name).start()
    with Line("127.0.0.1", s.port) as c:
        assert c.ask("USERNAME mon") == "ERR ACCESS-DENIED"
        assert c.ask("PASSWORD monpw") == "ERR ACCESS-DENIED"
        assert c.ask("LOGIN %s" % UPS) == "ERR USERNAME-REQUIRED"
        assert c.ask("GET VAR %s ups.status" % UPS) == 'VAR %s ups.status "OL"' % UPS
    with Line("127.0.0.1", s.port) as c:
        c.starttls(insecure_client_context())
        assert c.login("mon", "monpw") == ("OK", "OK")
        assert c.ask("LOGIN %s" % UPS) == "OK"
    assert "refused USERNAME from 127.0.0.1 before STARTTLS" in s.log()


def test_starttls_after_credentials_is_refused(stacks):
    s = tls_stack(stacks, issue(make_ca(), "ups.test")).start()
    with Line("127.0.0.1", s.port) as c:
        assert c.ask("USERNAME mon") == "OK"
        assert c.ask("STARTTLS") == "ERR INVALID-ARGUMENT"
        assert c.ask("PASSWORD monpw") == "OK"
        assert c.ask("LOGIN %s" % UPS) == "OK"  # still a working plaintext session
    assert "sent STARTTLS after credentials" in s.log()


# -- CERTREQUEST ---------------------------------------------------------------

@pytest.fixture
def client_pki(base):
    server_ca = make_ca("server CA")
    client_ca = make_ca("client CA", kind="rsa")
    other_ca = make_ca("someone else's CA")
    d = os.path.join(base, "pki")
    os.makedirs(d)
    os.chmod(d, 0o755)

    def client_cert(ca, name):
        leaf = issue(ca, name, client=True)
        path = os.path.join(d, name + ".pem")
        with open(path, "wb") as f:
            f.write(leaf.pem() + leaf.key_pem())
        return path

    return {
        "server": issue(server_ca, "ups.test"),
        "server_ca": write_pem(os.path.join(d, "server-ca.pem"), server_ca),
        "cadir": hash_dir(os.path.join(d, "clientcas"), client_ca),
        "good": client_cert(client_ca, "monitor1"),
        "foreign": client_cert(other_ca, "intruder"),
    }


@pytest.mark.parametrize("mode", ["REQUIRE", "2"])
def test_certrequest_require(stacks, client_pki, mode):
    s = tls_stack(stacks, client_pki["server"],
                  "CERTREQUEST %s\nCERTPATH %s\n" % (mode, client_pki["cadir"])).start()
    with Line("127.0.0.1", s.port) as c:
        c.starttls(verifying_context(client_pki["server_ca"], client_pki["good"]),
                   server_hostname="ups.test")
        assert c.login("mon", "monpw") == ("OK", "OK")
        assert c.ask("LOGIN %s" % UPS) == "OK"
    assert "certificate monitor1" in s.log()
    for cert in (None, client_pki["foreign"]):
        with Line("127.0.0.1", s.port) as c:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                c.starttls(verifying_context(client_pki["server_ca"], cert),
                           server_hostname="ups.test")
                c.ask("NETVER")  # TLS 1.3 reports the refusal on first use
    assert "TLS handshake with 127.0.0.1 failed" in s.log()


def test_certrequest_request(stacks, client_pki):
    s = tls_stack(stacks, client_pki["server"],
                  "CERTREQUEST REQUEST\nCERTPATH %s\n" % client_pki["cadir"]).start()
    with Line("127.0.0.1", s.port) as c:  # no certificate: allowed, password still needed
        c.starttls(verifying_context(client_pki["server_ca"]), server_hostname="ups.test")
        assert c.ask("NETVER") == "1.3"
    with Line("127.0.0.1", s.port) as c:  # a certificate from another CA: refused
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            c.starttls(verifying_context(client_pki["server_ca"], client_pki["foreign"]),
                       server_hostname="ups.test")
            c.ask("NETVER")
