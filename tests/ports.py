"""Free TCP ports for servers the tests start, chosen so nothing takes them first.

Asking the kernel for port 0 hands out a port from the ephemeral range, the
same range it picks from for every outgoing connection. Between the test
choosing that port and the server binding it, any connect() on the machine
(a client of an earlier test, a restarting upsmon) may take it as its local
port, and a server binding the wildcard address then fails with "Address
already in use". CI saw exactly that for `LISTEN *`.

So ports here come from below the ephemeral range, where connect() never
goes, and each is checked free on every IPv4 and IPv6 address, not only on
the loopback address the kernel was asked about. A port is never handed out
twice by one test process.
"""

import random
import socket

_given = set()
_random = random.SystemRandom()  # untouched by tests that seed `random`
_FLOOR = 10000  # below this are many registered services' ports


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port):
    """Whether nothing holds `port` on any address (strictly: no SO_REUSEADDR,
    so even a TIME_WAIT connection on it counts as taken)."""
    tries = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        tries.append((socket.AF_INET6, "::"))
    for family, wildcard in tries:
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this machine: nothing to collide with there
        try:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((wildcard, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port():
    """A TCP port free on every address, outside the ephemeral range
    (or the kernel's pick, should that range leave too little below it)."""
    high = _ephemeral_low() - 1
    for _ in range(200):
        if high - _FLOOR >= 1000:
            port = _random.randint(_FLOOR, high)
        else:
            with socket.socket() as s:
                s.bind(("0.0.0.0", 0))
                port = s.getsockname()[1]
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    raise RuntimeError("no free port found")
