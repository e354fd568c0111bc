"""Bad input and hostile clients: each gets NUT's error or is cut off, and
everyone else keeps being served with bounded memory."""

import os
import resource
import socket
import time

import pytest

from nutstack import Stack


def rss_kb(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1])
    raise AssertionError("no Rss in smaps_rollup")


def upsd_pid(stack):
    return stack.procs[-1].pid


class Raw:
    """A raw TCP client for sending exactly the bytes a test wants."""

    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def ask(self, data):
        self.send(data)
        return self.line()

    def close(self):
        self.s.close()


@pytest.fixture
def stack(tmp_path):
    conf = "MAXCONN 1500\nMAXCONN_PER_SOURCE 2100\nIDLE_TIMEOUT 3\n"
    with Stack(tmp_path, upsd_conf=conf) as s:
        s.start()
        yield s


def assert_serving(stack):
    with stack.client(timeout=5) as c:
        assert c.get_var("dummy", "ups.status") == "OL DISCHRG"


def test_malformed_lines_get_errors_and_keep_the_connection(stack):
    r = Raw(stack.port)
    assert r.ask(b"\n") == "ERR UNKNOWN-COMMAND"
    assert r.ask(b'GET VAR "dummy ups.status\n') == "ERR INVALID-ARGUMENT"
    assert r.ask(b'SET VAR dummy ups.id "a#b"\n') == "ERR INVALID-ARGUMENT"
    assert r.ask(b" ".join([b"w"] * 33) + b"\n") == "ERR INVALID-ARGUMENT"
    assert r.ask(b"GET\x01 VAR\x02 dummy ups.status\r\n") == 'VAR dummy ups.status "OL DISCHRG"'
    assert r.ask(b"GET VAR dummy \xff\xfeups.\xc3\xa9status\n") == \
        'VAR dummy ups.status "OL DISCHRG"'
    assert r.ask(b"A" * 10000 + b"\n") == "ERR INVALID-ARGUMENT"
    assert r.ask(b"GET VAR dummy ups.status\n") == 'VAR dummy ups.status "OL DISCHRG"'
    r.close()


def test_a_client_that_never_sends_a_newline(stack):
    pid = upsd_pid(stack)
    before = rss_kb(pid)
    r = Raw(stack.port)
    chunk = b"x" * 65536
    for _ in range(160):  # 10 MB without a newline
        r.send(chunk)
    assert r.line() == "ERR INVALID-ARGUMENT"
    assert_serving(stack)
    assert rss_kb(pid) - before < 8 * 1024, "memory grew with an unterminated line"
    r.send(b"\nGET VAR dummy ups.status\n")
    assert r.line() == 'VAR dummy ups.status "OL DISCHRG"'
    r.close()


def test_a_client_that_never_reads(stack):
    pid = upsd_pid(stack)
    before = rss_kb(pid)
    s = socket.create_connection(("127.0.0.1", stack.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 10
    request = b"LIST VAR dummy\n" * 64
    while time.monotonic() < deadline:
        try:
            sent += s.send(request)
        except BlockingIOError:
            time.sleep(0.01)
            if sent > 1 << 20:
                break
    assert_serving(stack)
    assert rss_kb(pid) - before < 16 * 1024, "memory grew for a client that never reads"
    # It is dropped once it stays idle past IDLE_TIMEOUT.
    time.sleep(4.5)
    s.setblocking(True)
    s.settimeout(5)
    closed = False
    try:
        while True:
            data = s.recv(1 << 20)
            if not data:
                closed = True
                break
    except (ConnectionResetError, socket.timeout):
        closed = True
    assert closed
    s.close()


def test_slow_sender_is_dropped_after_idle_timeout(stack):
    r = Raw(stack.port)
    r.send(b"GET VAR du")
    time.sleep(4.5)
    with pytest.raises((ConnectionError, OSError)):
        r.send(b"mmy ups.status\n")
        r.line()
    assert_serving(stack)


def test_two_thousand_connections(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    with Stack(tmp_path, upsd_conf="MAXCONN 1500\nMAXCONN_PER_SOURCE 2100\n") as stack:
        stack.start()
        _two_thousand(stack)


def _two_thousand(stack):
    import selectors

    pid = upsd_pid(stack)
    socks = []
    try:
        for _ in range(2000):
            try:
                socks.append(socket.create_connection(("127.0.0.1", stack.port), 5))
            except OSError:
                break
        assert len(socks) == 2000
        # Beyond MAXCONN (1500) connections are cut off at once.
        deadline = time.monotonic() + 10
        cut = set()
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        while time.monotonic() < deadline and len(cut) < 500:
            for key, _ in sel.select(0.5):
                s = key.fileobj
                try:
                    data = s.recv(10)
                except ConnectionResetError:
                    data = b""
                if data == b"":
                    cut.add(s)
                    sel.unregister(s)
        sel.close()
        assert len(cut) == 500
        # Those admitted are served.
        s = socks[10]
        s.sendall(b"GET VAR dummy ups.status\n")
        s.settimeout(5)
        assert s.recv(100) == b'VAR dummy ups.status "OL DISCHRG"\n'
        assert rss_kb(pid) < 64 * 1024
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    assert_serving(stack)


def test_connection_cap_per_source(tmp_path):
    with Stack(tmp_path, upsd_conf="MAXCONN_PER_SOURCE 5\n") as st:
        st.start()
        socks = [socket.create_connection(("127.0.0.1", st.port), 5) for _ in range(5)]
        extra = socket.create_connection(("127.0.0.1", st.port), 5)
        extra.settimeout(3)
        try:
            data = extra.recv(10)
        except ConnectionResetError:
            data = b""
        assert data == b""
        socks[0].sendall(b"VER\n")
        socks[0].settimeout(5)
        assert socks[0].recv(100).startswith(b"Network UPS Tools upsd")
        for s in socks + [extra]:
            s.close()
