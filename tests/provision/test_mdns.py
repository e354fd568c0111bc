"""The mDNS responder: Home Assistant's question (PTR _nut._tcp.local)
gets the service, its SRV/TXT and the host's address. Checked without a
network, then inside network namespaces with dig as an independent client
and with a real multicast query."""

import os
import shutil
import struct
import subprocess
import sys
import textwrap

import pytest

from nutapp import mdns

R = mdns.Responder("pi-nut")


def ask(name, qtype, source=("10.0.0.2", 5353), unicast=False, ident=0):
    return R.handle(mdns.build_query(name, qtype, ident=ident, unicast=unicast), source,
                    "10.0.0.1")


def test_service_browse_gets_everything_in_one_reply():
    [(packet, dest)] = ask("_nut._tcp.local", mdns.TYPE_PTR)
    assert dest == (mdns.GROUP, mdns.PORT)
    ident, flags, questions, records = mdns.parse_message(packet)
    assert flags & 0x8400 == 0x8400 and ident == 0 and questions == []
    assert ("_nut._tcp.local", mdns.TYPE_PTR, "pi-nut._nut._tcp.local") in records
    assert ("pi-nut._nut._tcp.local", mdns.TYPE_SRV, (0, 0, 3493, "pi-nut.local")) in records
    assert ("pi-nut.local", mdns.TYPE_A, bytes([10, 0, 0, 1])) in records
    assert ("pi-nut._nut._tcp.local", mdns.TYPE_TXT, b"\x09txtvers=1") in records


def test_names_are_case_insensitive_and_others_are_ignored():
    assert ask("PI-NUT.local", mdns.TYPE_A)
    assert ask("_NUT._TCP.LOCAL.", mdns.TYPE_PTR)
    assert ask("other.local", mdns.TYPE_A) == []
    assert ask("_http._tcp.local", mdns.TYPE_PTR) == []
    assert ask("pi-nut.local", mdns.TYPE_AAAA) == []


def test_legacy_and_unicast_questions_get_a_direct_answer():
    [(packet, dest)] = ask("pi-nut.local", mdns.TYPE_A, source=("10.0.0.2", 40000), ident=77)
    assert dest == ("10.0.0.2", 40000)
    ident, _, questions, records = mdns.parse_message(packet)
    assert ident == 77 and questions == [("pi-nut.local", mdns.TYPE_A, 1)]
    # RFC 6762 6.7: short TTL, no cache-flush bit for legacy clients.
    offset = packet.index(b"\x06pi-nut\x05local\x00", 12 + 18) + 14
    rtype, rclass, ttl = struct.unpack(">HHI", packet[offset:offset + 8])
    assert (rtype, rclass, ttl) == (mdns.TYPE_A, 1, 10)

    [(_, dest)] = ask("pi-nut.local", mdns.TYPE_A, unicast=True)
    assert dest == ("10.0.0.2", 5353)


def test_broken_packets_and_responses_are_ignored():
    assert R.handle(b"\x00" * 5, ("10.0.0.2", 5353), "10.0.0.1") == []
    loop = struct.pack(">6H", 0, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    assert R.handle(loop, ("10.0.0.2", 5353), "10.0.0.1") == []
    cut = mdns.build_query("pi-nut.local", mdns.TYPE_A)[:-3]
    assert R.handle(cut, ("10.0.0.2", 5353), "10.0.0.1") == []
    [(reply, _)] = ask("pi-nut.local", mdns.TYPE_A)
    assert R.handle(reply, ("10.0.0.2", 5353), "10.0.0.1") == []  # never answer answers


# --- on a real (namespaced) network ------------------------------------------------

needs_dig = pytest.mark.skipif(not shutil.which("dig"), reason="dig (bind9-dnsutils) missing")


@pytest.fixture
def responder(netns):
    netns.addr(netns.a, "10.66.0.1/24")
    netns.addr(netns.b, "10.66.0.2/24")
    proc = netns.popen(netns.a, sys.executable, "-m", "nutapp.mdns", "--hostname", "pi-nut",
                       "--interface", netns.if_a, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "answering for pi-nut.local" in line and netns.if_a in line
        yield netns
    finally:
        proc.terminate()
        proc.wait()


def dig(netns, *args):
    out = netns.run(netns.b, "dig", "+time=3", "+tries=2", "@10.66.0.1", "-p", "5353",
                    *args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return "\n".join(" ".join(line.split()) for line in out.stdout.splitlines())


@needs_dig
@pytest.mark.root
def test_dig_finds_the_service(responder):
    out = dig(responder, "_nut._tcp.local", "PTR")
    assert "status: NOERROR" in out and "flags: qr aa" in out
    assert "_nut._tcp.local. 10 IN PTR pi-nut._nut._tcp.local." in out
    assert "pi-nut._nut._tcp.local. 10 IN SRV 0 0 3493 pi-nut.local." in out
    assert "pi-nut.local. 10 IN A 10.66.0.1" in out
    assert dig(responder, "+short", "pi-nut.local", "A").strip() == "10.66.0.1"
    assert dig(responder, "+short", "pi-nut._nut._tcp.local", "TXT").strip() == '"txtvers=1"'


MULTICAST_CLIENT = textwrap.dedent("""
    import socket, sys
    from nutapp import mdns
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", mdns.PORT))
    me = socket.inet_aton(sys.argv[1])
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(mdns.GROUP) + me)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, me)
    s.settimeout(10)
    s.sendto(mdns.build_query("_nut._tcp.local", mdns.TYPE_PTR), (mdns.GROUP, mdns.PORT))
    while True:
        data, source = s.recvfrom(9000)
        ident, flags, questions, answers = mdns.parse_message(data)
        if flags & 0x8000:
            print(source[0], answers[0][2])
            break
""")


@pytest.mark.root
def test_multicast_question_gets_a_multicast_answer(responder):
    netns = responder
    netns.run(netns.b, "ip", "route", "add", "224.0.0.0/4", "dev", netns.if_b, check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = netns.run(netns.b, sys.executable, "-c", MULTICAST_CLIENT, "10.66.0.2",
                    capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10.66.0.1", "pi-nut._nut._tcp.local"]


AVAHI_CONF = """\
[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=%s
enable-dbus=yes
[publish]
disable-publishing=yes
"""

# Avahi needs a D-Bus system bus: both run in a private mount namespace with
# their own /run, so nothing of the host's is touched or seen.
AVAHI_BROWSE = """\
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus /run/avahi-daemon
dbus-daemon --system --nofork --nopidfile & bus=$!
for i in $(seq 50); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.1; done
avahi-daemon -f "$1" --no-chroot --no-drop-root --no-rlimits & avahi=$!
for i in $(seq 50); do avahi-browse -a -t -p >/dev/null 2>&1 && break; sleep 0.1; done
avahi-browse --resolve --terminate --parsable _nut._tcp || true
kill "$avahi" "$bus"
wait
"""


@pytest.mark.root
@pytest.mark.skipif(not (shutil.which("avahi-daemon") and shutil.which("avahi-browse")
                         and shutil.which("dbus-daemon") and shutil.which("unshare")),
                    reason="avahi-daemon/avahi-utils/dbus not installed")
def test_avahi_browse_resolves_the_service(responder, tmp_path):
    netns = responder
    conf = tmp_path / "avahi-daemon.conf"
    conf.write_text(AVAHI_CONF % netns.if_b)
    out = netns.run(netns.b, "unshare", "--mount", "--propagation", "private",
                    "sh", "-c", AVAHI_BROWSE, "sh", str(conf),
                    capture_output=True, text=True, timeout=60)
    resolved = [line.split(";") for line in out.stdout.splitlines() if line.startswith("=")]
    assert resolved, out.stdout + out.stderr
    fields = resolved[0]
    assert fields[1:6] == [netns.if_b, "IPv4", "pi-nut", "_nut._tcp", "local"]
    assert fields[6:10] == ["pi-nut.local", "10.66.0.1", "3493", '"txtvers=1"']
