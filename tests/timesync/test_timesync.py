"""The SNTP client against a real UDP server on 127.0.0.1, good and
hostile; the saved clock; the root/unprivileged split of the daemon.

The host's clock is never stepped: every test injects the step function.
"""

import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from nutapp import timesync
from nutapp.provision.problems import Problems
from nutapp.provision.settings import read_settings

# A served time far from the real one, so a sample cannot be right by luck.
SHIFT = 400 * 86400.0


def reply_for(request, served, stratum=2, leap=0, mode=4, version=4, origin=None,
              refid=b"GPS\0", root_delay=0, root_dispersion=0):
    """A server reply to `request` giving unix time `served`."""
    first = (leap << 6) | (version << 3) | mode
    head = struct.pack("!BBbbII", first, stratum, 6, -20, root_delay, root_dispersion)
    return (head + refid + timesync.unix_to_ntp(served - 60)
            + (request[40:48] if origin is None else origin)
            + timesync.unix_to_ntp(served) + timesync.unix_to_ntp(served))


class SntpServer:
    """A UDP server on 127.0.0.1 that answers each request with what
    `behave(request)` returns: bytes, a list of datagrams, or None (silence)."""

    def __init__(self, behave):
        self.behave = behave
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def name(self):
        return "127.0.0.1:%d" % self.port

    def _serve(self):
        while True:
            try:
                request, peer = self.sock.recvfrom(1024)
            except OSError:
                return
            self.requests.append(request)
            answer = self.behave(request)
            for datagram in answer if isinstance(answer, list) else [answer]:
                if datagram is not None:
                    self.sock.sendto(datagram, peer)

    def close(self):
        self.sock.close()


@pytest.fixture
def serve():
    servers = []

    def start(behave):
        server = SntpServer(behave)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def shifted(request):
    return reply_for(request, time.time() + SHIFT)


def query(server, timeout=2.0):
    return timesync.query("127.0.0.1", server.port, timeout=timeout)


# --- good replies ---------------------------------------------------------------

def test_a_good_reply_gives_the_servers_offset(serve):
    server = serve(shifted)
    sample = query(server)
    assert abs(sample.offset - SHIFT) < 1.0
    assert 0 <= sample.delay < 1.0
    assert sample.stratum == 2
    assert sample.server == server.name


def test_the_request_is_client_mode_and_carries_a_random_nonce(serve):
    server = serve(shifted)
    query(server)
    query(server)
    first, second = server.requests
    assert len(first) == 48
    assert first[0] & 7 == 3 and (first[0] >> 3) & 7 == 4
    assert first[:40] == bytes([first[0]]) + bytes(39)  # nothing about our clock
    assert first[40:48] != second[40:48]


def test_sync_steps_the_clock_by_the_offset(serve):
    server = serve(shifted)
    steps = []
    syncer = timesync.Syncer([("127.0.0.1", server.port)], step=steps.append, timeout=2.0)
    sample, stepped = syncer.sync()
    assert stepped and len(steps) == 1 and abs(steps[0] - SHIFT) < 1.0
    assert steps[0] == sample.offset


def test_a_clock_already_right_is_left_alone(serve):
    server = serve(lambda request: reply_for(request, time.time()))
    steps = []
    syncer = timesync.Syncer([("127.0.0.1", server.port)], step=steps.append, timeout=2.0)
    sample, stepped = syncer.sync()
    assert not stepped and steps == []
    assert abs(sample.offset) < timesync.STEP_THRESHOLD


def test_a_forged_reply_is_ignored_and_the_real_one_taken(serve):
    def forged_then_real(request):
        return [reply_for(request, time.time() - SHIFT, origin=b"\x01" * 8),
                reply_for(request, time.time() + SHIFT)]
    sample = query(serve(forged_then_real))
    assert abs(sample.offset - SHIFT) < 1.0


def test_the_next_server_answers_when_the_first_fails(serve):
    bad = serve(lambda request: None)
    good = serve(shifted)
    syncer = timesync.Syncer([("127.0.0.1", bad.port), ("127.0.0.1", good.port)],
                             step=None, timeout=0.5)
    sample = syncer.fetch()
    assert sample.server == good.name and abs(sample.offset - SHIFT) < 1.0
    assert len(bad.requests) == 1


# --- hostile or useless replies -------------------------------------------------

@pytest.mark.parametrize("behave, reason", [
    (lambda r: reply_for(r, time.time(), origin=bytes(8)), "no answer"),
    (lambda r: reply_for(r, time.time(), stratum=16), "stratum 16"),
    (lambda r: reply_for(r, time.time(), leap=3), "not synchronised"),
    (lambda r: reply_for(r, time.time(), mode=3), "mode 3"),
    (lambda r: reply_for(r, time.time(), mode=5), "mode 5"),
    (lambda r: reply_for(r, time.time(), version=7), "version 7"),
    (lambda r: reply_for(r, time.time())[:47], "short reply"),
    (lambda r: b"", "short reply"),
    (lambda r: reply_for(r, time.time(), root_dispersion=10 << 16), "root distance"),
    (lambda r: reply_for(r, time.time())[:40] + bytes(8), "zero receive or transmit"),
    (lambda r: None, "no answer"),
])
def test_a_bad_reply_gives_no_time(serve, behave, reason):
    server = serve(behave)
    steps = []
    syncer = timesync.Syncer([("127.0.0.1", server.port)], step=steps.append, timeout=0.5)
    with pytest.raises(timesync.SntpError) as info:
        syncer.sync()
    assert reason in str(info.value)
    assert steps == []
    assert server.requests


def test_a_reply_claiming_more_time_than_the_round_trip_is_refused(serve):
    def slow_server(request):
        reply = bytearray(reply_for(request, time.time()))
        reply[32:40] = timesync.unix_to_ntp(time.time() - 100)  # received 100 s before sending
        return bytes(reply)
    with pytest.raises(timesync.BadReply, match="the server took"):
        query(serve(slow_server), timeout=0.5)


@pytest.mark.parametrize("code, denied", [("RATE", False), ("DENY", True), ("RSTR", True)])
def test_kiss_of_death(serve, code, denied):
    server = serve(lambda r: reply_for(r, time.time() + SHIFT, stratum=0,
                                       refid=code.encode()))
    syncer = timesync.Syncer([("127.0.0.1", server.port)], step=None, timeout=0.5)
    with pytest.raises(timesync.SntpError, match="kiss-o'-death %s" % code):
        syncer.fetch()
    asked = len(server.requests)
    with pytest.raises(timesync.SntpError):
        syncer.fetch()
    # DENY and RSTR: that server is not asked again; RATE: it is, later.
    assert len(server.requests) == (asked if denied else asked + 1)


def test_a_closed_port_is_a_failure_not_a_crash():
    port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    with pytest.raises(timesync.SntpError):
        timesync.query("127.0.0.1", number, timeout=0.5)


def test_an_unknown_host_is_a_failure():
    with pytest.raises(timesync.SntpError, match="cannot resolve"):
        timesync.query("no-such-host.invalid", 123, timeout=0.5)


# --- timestamps and server names ------------------------------------------------

@pytest.mark.parametrize("t", [0.0, 1e9 + 0.25, 2085978495.5, 2085978496.75, 4e9])
def test_timestamps_round_trip_across_the_2036_era(t):
    assert abs(timesync.ntp_to_unix(timesync.unix_to_ntp(t)) - t) < 1e-6


@pytest.mark.parametrize("text, expected", [
    ("pool.ntp.org", ("pool.ntp.org", 123)),
    ("10.0.2.2:12345", ("10.0.2.2", 12345)),
    ("192.0.2.1", ("192.0.2.1", 123)),
    ("fd00::1", ("fd00::1", 123)),
    ("[fd00::1]:1123", ("fd00::1", 1123)),
    ("[fd00::1]", ("fd00::1", 123)),
    ("host:0", None), ("host:65536", None), ("host:x", None), (":123", None),
    ("bad_name!", None), ("[host]:123", None), ("[fd00::1]x", None), ("a::b::c", None),
    ("-bad.example", None), ("", None),
])
def test_parse_server(text, expected):
    assert timesync.parse_server(text) == expected


def test_read_servers_skips_junk_and_defaults_to_the_pool(tmp_path):
    path = tmp_path / "ntp.servers"
    path.write_text("# mine\n10.0.2.2:4123\nnot a server!\n[fd00::1]:123\n")
    assert timesync.read_servers(str(path)) == [("10.0.2.2", 4123), ("fd00::1", 123)]
    path.write_text("# nothing\n")
    assert timesync.read_servers(str(path)) == [("pool.ntp.org", 123)]
    assert timesync.read_servers(str(tmp_path / "missing")) == [("pool.ntp.org", 123)]


def test_provisioning_accepts_a_server_with_a_port_and_refuses_a_bad_one():
    problems = Problems()
    s = read_settings("[system]\ntime_servers = NTP.example.org, 10.0.2.2:4123, "
                      "[fd00::1]:123\n", problems)
    assert not problems
    assert s.time_servers == ["ntp.example.org", "10.0.2.2:4123", "[fd00::1]"]
    problems = Problems()
    read_settings("[system]\ntime_servers = 10.0.2.2:99999\n", problems)
    assert problems and "10.0.2.2:99999" in problems.items[0].what


# --- the last known time --------------------------------------------------------

def test_restore_only_moves_the_clock_forward():
    set_to = []
    assert timesync.restore(2000, 1000, now=500, set_time=set_to.append) == 2000
    assert timesync.restore(None, 1000, now=500, set_time=set_to.append) == 1000
    assert timesync.restore(2000, 1000, now=3000, set_time=set_to.append) is None
    assert timesync.restore(None, 0, now=10, set_time=set_to.append) is None
    assert set_to == [2000, 1000]


def test_save_and_read_the_clock(tmp_path):
    path = str(tmp_path / "clock")
    assert timesync.read_saved(path) is None
    assert timesync.save_clock(path, now=1234567890.7) == 1234567890
    assert timesync.read_saved(path) == 1234567890
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    for junk in ("", "12abc", "-5", "9" * 20):
        with open(path, "w") as f:
            f.write(junk)
        assert timesync.read_saved(path) is None


def test_the_command_line_restores_from_the_saved_time_only_forward(tmp_path):
    # The real clock is ahead of this saved time: nothing may change, and
    # nothing is printed.
    path = tmp_path / "clock"
    path.write_text("1000000000\n")
    done = subprocess.run([sys.executable, "-m", "nutapp.timesync", "--restore", "--clock",
                           str(path), "--floor-file", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""


# --- the daemon -----------------------------------------------------------------

class Recorder:
    def __init__(self, results, now=1.0e9):
        self.results = list(results)
        self.asked = []
        self.steps = []
        self.saves = []
        self.lines = []
        self.now = now

    def fetch(self, servers, denied):
        self.asked.append(servers)
        result = self.results.pop(0)
        if isinstance(result, str):
            return None, result, denied
        return timesync.Sample(result, 0.01, 2, "10.0.2.2:4123"), None, denied

    def daemon(self, tmp_path, floor=0):
        servers = tmp_path / "ntp.servers"
        servers.write_text("10.0.2.2:4123\n")
        return timesync.Daemon(str(servers), str(tmp_path / "clock"), floor, self.fetch,
                               self.steps.append, self.saves.append, self.lines.append,
                               clock=lambda: self.now)


def test_the_daemon_backs_off_then_steps_saves_and_polls(tmp_path):
    rec = Recorder(["timeout"] * 9 + [SHIFT, 0.01])
    daemon = rec.daemon(tmp_path)
    waits = [daemon.round() for _ in range(9)]
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0]
    assert len(rec.lines) == 1 and "timeout" in rec.lines[0]
    assert daemon.round() == timesync.POLL_INTERVAL
    assert rec.steps == [SHIFT] and rec.saves == []
    assert "stepped +%.3f s" % SHIFT in rec.lines[-1]
    assert daemon.round() == timesync.POLL_INTERVAL  # in step: no change
    assert rec.steps == [SHIFT]
    daemon.save_now()
    assert rec.saves == [str(tmp_path / "clock")]
    assert rec.asked[0] == [("10.0.2.2", 4123)]


def test_the_daemon_never_sets_a_time_before_the_image_was_built(tmp_path):
    rec = Recorder([-SHIFT], now=1.0e9)
    daemon = rec.daemon(tmp_path, floor=1.0e9 - 10)
    assert daemon.round() == timesync.RETRY_MAX
    assert rec.steps == [] and rec.saves == []
    assert "before this image was built" in rec.lines[0]


def test_the_network_part_runs_in_a_child_and_reports_back(serve):
    server = serve(shifted)
    uid = timesync.UNPRIVILEGED if os.geteuid() == 0 else None
    sample, reason, denied = timesync.fetch_unprivileged(
        [("127.0.0.1", server.port)], set(), uid, uid, timeout=2.0)
    assert reason is None and abs(sample.offset - SHIFT) < 1.0
    assert sample.server == server.name and denied == set()


def test_the_child_reports_failures_and_denials(serve):
    server = serve(lambda r: reply_for(r, time.time(), stratum=0, refid=b"DENY"))
    sample, reason, denied = timesync.fetch_unprivileged(
        [("127.0.0.1", server.port)], set(), None, None, timeout=0.5)
    assert sample is None and "DENY" in reason and denied == {server.name}


@pytest.mark.parametrize("data", [
    b"", b"garbage", b"[]", b'{"offset": NaN, "delay": 0.1, "stratum": 2, "server": "x"}',
    b'{"offset": 1e300, "delay": 0.1, "stratum": 2, "server": "x"}',
    b'{"offset": true, "delay": 0.1, "stratum": 2, "server": "x"}',
    b'{"offset": 1.0, "delay": -1, "stratum": 2, "server": "x"}',
    b'{"offset": 1.0, "delay": 0.1, "stratum": 0, "server": "x"}',
    b'{"offset": 1.0, "delay": 0.1, "stratum": 2}',
])
def test_the_parent_checks_the_childs_report_again(data):
    sample, reason, denied = timesync._check_result(data, {"a"})
    assert sample is None and reason and denied == {"a"}


def test_query_on_the_command_line(serve):
    server = serve(shifted)
    done = subprocess.run([sys.executable, "-m", "nutapp.timesync", "--query", "--server",
                           server.name], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[0] == server.name and words[1] == "offset"
    assert abs(float(words[2]) - SHIFT) < 2.0 and math.isfinite(float(words[5]))
