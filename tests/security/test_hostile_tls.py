"""Hostile clients against a TLS upsd: dribbling senders, garbage instead of
a handshake, handshakes never finished, STARTTLS twice or mid-login, client
certificates from another CA, huge certificate chains, thousands of failed
logins. Each is refused and logged with its source (rate-limited), and a
well-behaved client keeps being served during every attack."""

import os
import ssl
import threading
import time

import pytest

from certs import hash_dir, issue, make_ca, write_certfile, write_pem
from stack import UPS, Line

USERS = "[mon]\n\tpassword = monpw\n\tupsmon secondary\n"
ATTACKER = "127.0.0.2"


class WellBehaved(threading.Thread):
    """Polls GET VAR over verified TLS from 127.0.0.1 until stopped; every
    reply must be right."""

    def __init__(self, port, cafile, certfile):
        threading.Thread.__init__(self, daemon=True)
        self.port, self.cafile, self.certfile = port, cafile, certfile
        self.ok = 0
        self.errors = []
        self.stop = threading.Event()

    def context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self.cafile)
        ctx.load_cert_chain(self.certfile)
        return ctx

    def run(self):
        while not self.stop.is_set():
            try:
                with Line("127.0.0.1", self.port, timeout=10) as c:
                    c.starttls(self.context(), server_hostname="ups.test")
                    for _ in range(50):
                        r = c.ask("GET VAR %s ups.status" % UPS)
                        if r != 'VAR %s ups.status "OL"' % UPS:
                            self.errors.append(r)
                        self.ok += 1
            except Exception as e:  # noqa: B902 - any failure is the finding
                self.errors.append(repr(e))
            self.stop.wait(0.1)  # a new TLS session now and then, as clients do

    def finish(self):
        self.stop.set()
        self.join(30)
        return self.ok, self.errors


@pytest.fixture
def target(stacks, base):
    server_ca, client_ca = make_ca("server CA"), make_ca("client CA")
    pki = os.path.join(base, "pki")
    os.makedirs(pki)
    os.chmod(pki, 0o755)
    s = stacks(users=USERS)
    certfile = write_certfile(os.path.join(s.etc, "upsd.pem"), issue(server_ca, "ups.test"))
    cadir = hash_dir(os.path.join(pki, "clientcas"), client_ca)
    s.put("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\nCERTREQUEST REQUEST\nCERTPATH %s\n"
                       "IDLE_TIMEOUT 3\nMAXCONN_PER_SOURCE 64\n" % (s.port, certfile, cadir))
    s.start()

    def client_pem(ca, name, chain=()):
        leaf = issue(ca, name, client=True)
        path = os.path.join(pki, name + ".pem")
        with open(path, "wb") as f:
            f.write(leaf.pem() + b"".join(c.pem() for c in chain) + leaf.key_pem())
        return path

    s.server_ca = write_pem(os.path.join(pki, "server-ca.pem"), server_ca)
    s.good_client = client_pem(client_ca, "good-client")
    s.client_pem = client_pem
    s.good = WellBehaved(s.port, s.server_ca, s.good_client)
    s.good.start()
    yield s
    ok, errors = s.good.finish()
    assert errors == [] and ok > 0


def attack_lines(log, source=ATTACKER):
    return [ln for ln in log.splitlines() if source in ln]


def assert_rate_limited(stack, what, at_most=12):
    lines = attack_lines(stack.log())
    assert any(what in ln for ln in lines), lines[-5:]
    assert len(lines) <= at_most, "%d log lines for %s" % (len(lines), ATTACKER)


def test_garbage_instead_of_a_handshake(target):
    cut_off = 0
    for i in range(200):
        with Line("127.0.0.1", target.port, src=ATTACKER) as c:
            reply = c.ask("STARTTLS")
            if reply == "ERR ACCESS-DENIED":  # starting TLS too often: cut off
                with pytest.raises((ConnectionError, OSError)):
                    c.ask("NETVER")
                cut_off += 1
                continue
            assert reply == "OK STARTTLS"
            junk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" if i % 2 else os.urandom(512)
            c.sock.sendall(junk)
            try:  # at most an alert, then the server closes
                while c.sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
    assert_rate_limited(target, "TLS handshake with %s failed" % ATTACKER)
    assert cut_off > 0  # 200 handshakes in a burst are more than one source may start


def test_handshakes_never_finished(target):
    held = [Line("127.0.0.1", target.port, src=ATTACKER) for _ in range(40)]
    for c in held:
        assert c.ask("STARTTLS") == "OK STARTTLS"  # ...and then nothing
    time.sleep(3)  # the well-behaved client works meanwhile
    for c in held:
        c.close()


def test_dribbling_sender_is_dropped(target):
    c = Line("127.0.0.1", target.port, src=ATTACKER)
    dropped = False
    for _ in range(40):  # one byte every half second, never a whole line
        try:
            c.sock.sendall(b"G")
            time.sleep(0.5)
        except OSError:
            dropped = True
            break
    c.close()
    assert dropped
    assert_rate_limited(target, "a request line took longer than IDLE_TIMEOUT")


def test_starttls_twice_and_mid_login(target):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=target.server_ca)
    for _ in range(30):
        with Line("127.0.0.1", target.port, src=ATTACKER) as c:
            c.starttls(ctx, server_hostname="ups.test")
            assert c.ask("STARTTLS") == "ERR ALREADY-SSL-MODE"
            assert c.ask("NETVER") == "1.3"
        with Line("127.0.0.1", target.port, src=ATTACKER) as c:
            assert c.ask("USERNAME mon") == "OK"
            assert c.ask("STARTTLS") == "ERR INVALID-ARGUMENT"
    assert_rate_limited(target, "sent STARTTLS twice", at_most=15)
    assert any("after credentials" in ln for ln in attack_lines(target.log()))


def test_client_certificate_from_another_ca(target):
    foreign = target.client_pem(make_ca("rogue CA"), "rogue-client")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=target.server_ca)
    ctx.load_cert_chain(foreign)
    for _ in range(50):
        with Line("127.0.0.1", target.port, src=ATTACKER) as c:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                c.starttls(ctx, server_hostname="ups.test")
                c.ask("NETVER")
    assert_rate_limited(target, "certificate verify failed")


def test_huge_certificate_chain(target):
    chain = [make_ca("link 0")]
    for i in range(1, 300):
        chain.append(make_ca("link %d %s" % (i, "x" * 50), issuer=chain[-1]))
    pem = target.client_pem(chain[-1], "huge-chain", chain=reversed(chain))
    assert os.path.getsize(pem) > 150000
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=target.server_ca)
    ctx.load_cert_chain(pem)
    for _ in range(10):
        with Line("127.0.0.1", target.port, src=ATTACKER) as c:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                c.starttls(ctx, server_hostname="ups.test")
                c.ask("NETVER")
    assert_rate_limited(target, "excessive message size")


def test_thousands_of_failed_logins_over_tls(target):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=target.server_ca)
    for _ in range(10):
        with Line("127.0.0.1", target.port, src=ATTACKER) as c:
            c.starttls(ctx, server_hostname="ups.test")
            c.login("mon", "guess")
            for _ in range(200):
                assert c.ask("LOGIN %s" % UPS) == "ERR ACCESS-DENIED"
    assert_rate_limited(target, "failed login for user mon from %s" % ATTACKER)
