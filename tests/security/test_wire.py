"""What crosses the wire: a tcpdump capture of loopback traffic shows no
credentials after OK STARTTLS, and shows them when TLS is off (so the check
can fail)."""

import os
import shutil
import struct
import subprocess
import time

import pytest

from certs import issue, make_ca, write_certfile
from debian import DebianUpsmon, have_debian_nut, nss_trust_db, wait_for
from stack import IS_ROOT, UPS, Line, insecure_client_context

pytestmark = pytest.mark.skipif(not (IS_ROOT and shutil.which("tcpdump")),
                                reason="capturing on lo needs root and tcpdump")

USER, PASSWORD = "wireuser", "Zq9wirePassword"
USERS = "[%s]\n\tpassword = %s\n\tupsmon secondary\n" % (USER, PASSWORD)


class Capture:
    def __init__(self, path, port):
        self.path = path
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-Z", "root", "-s", "0",
             "-w", path, "tcp port %d" % port],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline().decode()  # "listening on lo ..." once armed
        assert "listening on" in line, line

    def stop(self):
        # Let the last packets reach the file (-U writes each one as it
        # comes): wait until it has stopped growing for a second, since on
        # a loaded machine tcpdump may be scheduled late.
        deadline = time.monotonic() + 15
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= 1.0:
                break
            time.sleep(0.1)
        self.proc.terminate()
        self.proc.wait(10)
        return client_and_server_bytes(self.path)


def client_and_server_bytes(path):
    """(bytes the client sent, bytes the server sent) from a pcap of one
    IPv4 TCP conversation on lo, payloads concatenated in capture order,
    retransmissions (same sequence number) counted once."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    assert linktype == 1, "expected Ethernet framing on lo, got linktype %d" % linktype
    off = 24
    streams = {}
    seen = set()
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "IIII", data[off:off + 16])[2]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(pkt) < 34 or pkt[12:14] != b"\x08\x00":
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        payload = tcp[(tcp[12] >> 4) * 4:]
        if not payload or (sport, dport, seq) in seen:
            continue
        seen.add((sport, dport, seq))
        streams.setdefault((sport, dport), []).append(payload)
    return streams


def split_directions(streams, port):
    client = b"".join(b"".join(v) for (s, d), v in streams.items() if d == port)
    server = b"".join(b"".join(v) for (s, d), v in streams.items() if s == port)
    return client, server


def tls_stack(stacks):
    s = stacks(users=USERS)
    certfile = write_certfile(os.path.join(s.etc, "upsd.pem"), issue(make_ca(), "ups.example"))
    s.put("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\n" % (s.port, certfile))
    return s.start()


def session(port, tls):
    with Line("127.0.0.1", port) as c:
        if tls:
            c.starttls(insecure_client_context())
        assert c.login(USER, PASSWORD) == ("OK", "OK")
        assert c.ask("LOGIN %s" % UPS) == "OK"
        assert c.ask("GET VAR %s ups.status" % UPS) == 'VAR %s ups.status "OL"' % UPS
        c.ask("LOGOUT")


SECRETS = (b"USERNAME", b"PASSWORD", USER.encode(), PASSWORD.encode())


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plaintext-control"])
def test_no_credentials_in_clear_after_starttls(stacks, base, tls):
    s = tls_stack(stacks)
    cap = Capture(os.path.join(base, "wire.pcap"), s.port)
    session(s.port, tls)
    client, server = split_directions(cap.stop(), s.port)
    if tls:
        head, sep, after = client.partition(b"STARTTLS\n")
        assert head == b"" and sep, client[:40]
        assert b"OK STARTTLS\n" in server
        for secret in SECRETS:
            assert secret not in after
        assert b"LOGIN" not in after and b"OL" not in server.partition(b"OK STARTTLS\n")[2]
        # TLS records follow (handshake 0x16; under heavy load a capture can
        # miss the ClientHello packet, leaving ChangeCipherSpec 0x14 first).
        assert after[:1] in (b"\x14", b"\x16", b"\x17") and after[1:2] == b"\x03"
    else:
        for secret in SECRETS:
            assert secret in client


@pytest.mark.skipif(not have_debian_nut(), reason="Debian's NSS upsmon")
def test_debian_upsmon_sends_no_credentials_in_clear(stacks, base):
    ca = make_ca()
    s = stacks(users=USERS)
    certfile = write_certfile(os.path.join(s.etc, "upsd.pem"), issue(ca, "ups.example"))
    s.put("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\n" % (s.port, certfile))
    s.start()
    db = nss_trust_db(os.path.join(base, "nssdb"), ca)
    cap = Capture(os.path.join(base, "upsmon.pcap"), s.port)
    mon = DebianUpsmon(base, "%s@127.0.0.1:%d" % (UPS, s.port), USER, PASSWORD, db,
                       "ups.example")
    try:
        mon.start(s.state)
        wait_for(lambda: "logged into UPS [%s] (TLS)" % UPS in s.log(), "upsmon's login",
                 details=mon.log)
    finally:
        mon.stop()
    client, server = split_directions(cap.stop(), s.port)
    after = client.partition(b"STARTTLS\n")[2]
    assert b"OK STARTTLS\n" in server and after
    for secret in SECRETS:
        assert secret not in after
