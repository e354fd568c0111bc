"""Network access: LISTEN (several, IPv4/IPv6, `*`), per-user allowfrom
tested from network namespaces the test builds, the per-source connection
cap, and the per-source login throttle under thousands of failures."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from ports import free_port
from stack import IS_ROOT, UPS, Line

HERE = os.path.dirname(os.path.abspath(__file__))
USERS = "[mon]\n\tpassword = monpw\n\tupsmon secondary\n"


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- LISTEN --------------------------------------------------------------------

@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1")
def test_several_listen_lines(stacks):
    p1, p2 = free_port(), free_port()
    s = stacks(users=USERS, port=p1, listen=[("127.0.0.1", p1), ("::1", p1), ("127.0.0.2", p2)])
    s.start()
    for host, port in (("127.0.0.1", p1), ("::1", p1), ("127.0.0.2", p2)):
        with Line(host, port) as c:
            assert c.ask("GET VAR %s ups.status" % UPS) == 'VAR %s ups.status "OL"' % UPS
    for host, port in (("127.0.0.2", p1), ("127.0.0.1", p2)):  # only what was asked for
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=2).close()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1")
def test_listen_star_is_both_any_addresses(stacks):
    s = stacks(users=USERS)
    s.put("upsd.conf", "LISTEN * %d\n" % s.port)
    s.start()
    for host in ("127.0.0.1", "127.0.0.3", "::1"):
        with Line(host, s.port) as c:
            assert c.ask("NETVER") == "1.3"
    assert "listening on :: port %d" % s.port in s.log()
    assert "listening on 0.0.0.0 port %d" % s.port in s.log()


def test_listen_on_an_unavailable_address_stops_the_server(stacks):
    s = stacks(users=USERS)
    s.put("upsd.conf", "LISTEN 192.0.2.77 %d\n" % s.port)  # not on this host: bind fails
    rc, out = s.run_upsd_to_exit()
    assert rc != 0 and "can't listen on 192.0.2.77" in out


# -- per-source limits -----------------------------------------------------------

def test_ipv6_sources_count_by_slash_64():
    from nutapp.server.upsd import _source_key

    assert _source_key("2001:db8:1:2::7") == _source_key("2001:db8:1:2:ffff::1")
    assert _source_key("2001:db8:1:2::7") != _source_key("2001:db8:1:3::7")
    assert _source_key("192.0.2.7") == "192.0.2.7"


def test_connection_cap_per_source(stacks):
    s = stacks(users=USERS, upsd_conf="MAXCONN_PER_SOURCE 8\n").start()
    held = [Line("127.0.0.1", s.port, src="127.0.0.2") for _ in range(8)]
    try:
        for c in held:
            assert c.ask("NETVER") == "1.3"
        extra = Line("127.0.0.1", s.port, src="127.0.0.2")
        with pytest.raises((ConnectionError, OSError)):
            extra.ask("NETVER")
        extra.close()
        with Line("127.0.0.1", s.port, src="127.0.0.3") as other:
            assert other.ask("NETVER") == "1.3"
        for c in held:  # the ones in are still served
            assert c.ask("NETVER") == "1.3"
    finally:
        for c in held:
            c.close()
    assert "refused 127.0.0.2: too many connections from that address" in s.log()


def test_thousands_of_failed_logins_are_throttled_per_source(stacks):
    s = stacks(users=USERS).start()
    attempts = 0
    for _ in range(20):
        with Line("127.0.0.1", s.port, src="127.0.0.2") as c:
            c.login("mon", "guess")
            for _ in range(100):
                assert c.ask("LOGIN %s" % UPS) == "ERR ACCESS-DENIED"
                attempts += 1
    assert attempts == 2000
    # The right password from the attacking address is refused too now...
    with Line("127.0.0.1", s.port, src="127.0.0.2") as c:
        c.login("mon", "monpw")
        assert c.ask("LOGIN %s" % UPS) == "ERR ACCESS-DENIED"
    # ...while another address logs in.
    with Line("127.0.0.1", s.port, src="127.0.0.3") as c:
        c.login("mon", "monpw")
        assert c.ask("LOGIN %s" % UPS) == "OK"
    log = s.log()
    assert "failed login for user mon from 127.0.0.2 (address blocked for a while)" in log
    assert "User mon@127.0.0.3 logged into UPS" in log
    # Logged with the source, and rate-limited: not one line per attempt.
    assert 0 < log.count("127.0.0.2") < 50


# -- allowfrom, from network namespaces ------------------------------------------

NS_CLIENT = r"""
import json, sys
sys.path.insert(0, %(here)r)
sys.path.insert(0, %(tests)r)  # stack imports ports
from stack import Line
out = []
for host, user, pw in json.loads(sys.argv[1]):
    try:
        with Line(host, %(port)d, timeout=10) as c:
            c.login(user, pw)
            out.append([c.ask("LOGIN ups"), c.ask("GET VAR ups ups.status")])
    except OSError as e:
        out.append(["OSError", str(e)])
print(json.dumps(out))
"""


class Netns:
    """Three namespaces: the server's, and clients A and B on their own
    veth links to it. Addresses exist only inside these namespaces."""

    def __init__(self):
        tag = "%d" % (os.getpid() % 100000)
        self.srv, self.a, self.b = ("nutsec%s%s" % (tag, n) for n in ("s", "a", "b"))
        self.made = []
        try:
            for ns in (self.srv, self.a, self.b):
                self._ip("netns", "add", ns)
                self.made.append(ns)
                self._ip("-n", ns, "link", "set", "lo", "up")
            self._link(self.a, "1", "10.231.1", "fd5e:c:1")
            self._link(self.b, "2", "10.231.2", "fd5e:c:2")
        except Exception:
            self.remove()
            raise

    def _ip(self, *args):
        subprocess.run(["ip"] + list(args), check=True, capture_output=True)

    def _link(self, client, n, v4, v6):
        outer, inner = "nsv%s%s" % (n, self.srv[-6:]), "nsc%s%s" % (n, self.srv[-6:])
        self._ip("-n", self.srv, "link", "add", outer, "type", "veth", "peer", "name", inner,
                 "netns", client)
        self._ip("-n", self.srv, "addr", "add", v4 + ".1/24", "dev", outer)
        self._ip("-n", self.srv, "addr", "add", v6 + "::1/64", "dev", outer, "nodad")
        self._ip("-n", self.srv, "link", "set", outer, "up")
        self._ip("-n", client, "addr", "add", v4 + ".2/24", "dev", inner)
        self._ip("-n", client, "addr", "add", v6 + "::2/64", "dev", inner, "nodad")
        self._ip("-n", client, "link", "set", inner, "up")

    def run_client(self, ns, port, attempts):
        code = NS_CLIENT % {"here": HERE, "tests": os.path.dirname(HERE), "port": port}
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code,
                            json.dumps(attempts)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def remove(self):
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made = []


@pytest.fixture
def netns():
    if not (IS_ROOT and shutil.which("ip")):
        pytest.skip("network namespaces need root and iproute2")
    n = Netns()
    yield n
    n.remove()


def test_allowfrom_from_network_namespaces(stacks, netns):
    users = ("[lan]\n\tpassword = lanpw\n\tupsmon secondary\n"
             "\tallowfrom = 10.231.1.0/24 fd5e:c:1::/64\n"
             "[anywhere]\n\tpassword = anypw\n\tupsmon secondary\n")
    s = stacks(users=users, netns=netns.srv)
    s.put("upsd.conf", "LISTEN * %d\n" % s.port)
    s.start_driver()
    s.start_upsd(wait=False)
    status = 'VAR ups ups.status "OL"'
    tries = [["10.231.1.1", "lan", "lanpw"], ["fd5e:c:1::1", "lan", "lanpw"],
             ["10.231.2.1", "lan", "lanpw"], ["fd5e:c:2::1", "lan", "lanpw"],
             ["10.231.2.1", "anywhere", "anypw"]]
    for _ in range(100):  # wait for upsd inside its namespace
        a = netns.run_client(netns.a, s.port, tries[:2])
        if a[0][1] == status and a[1][1] == status:
            break
        time.sleep(0.2)
    assert a == [["OK", status], ["OK", status]]
    b = netns.run_client(netns.b, s.port, tries[2:])
    # Not allowed from B: the login is refused, reading data (no login) is not.
    assert b == [["ERR ACCESS-DENIED", status], ["ERR ACCESS-DENIED", status],
                 ["OK", status]]
    log = s.log()
    assert "user lan not allowed from 10.231.2.2 (allowfrom)" in log
    assert "user lan not allowed from fd5e:c:2::2 (allowfrom)" in log
    assert "User lan@10.231.1.2 logged into UPS [ups]" in log
    assert "User anywhere@10.231.2.2 logged into UPS [ups]" in log
