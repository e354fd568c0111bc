"""The appliance's clock: an SNTP client, and the last known time kept on
the SD card.

A Raspberry Pi has no battery-backed clock: it boots at whatever time the
kernel starts with (1970, or the build of its kernel). TLS certificate
checks, log times and the shutdown timers all depend on the wall clock, so
the appliance takes the time from time servers (SNTP, RFC 4330, client mode
of RFC 5905) and, for boots without network, keeps the last known time in a
file on the data partition: restored early at boot when the clock is behind
it, saved every hour and at shutdown (not at each sync: a boot that lasts
less than an hour writes nothing to the card). The clock then never goes
back in time across boots, and never before the image was built.

Theory of operation:

- `make_request` and `parse_reply` are the protocol, without I/O. A request
  carries 64 random bits in its transmit timestamp instead of our clock
  (nothing about us leaks, and the reply must echo them back as its origin
  timestamp, which a blind spoofer cannot guess). A reply is accepted only
  in server mode 4, with a stratum from 1 to 15, a leap indicator other
  than 3 (unsynchronised), our origin, non-zero receive and transmit
  timestamps, and a root distance and round trip below a few seconds.
  Stratum 0 is a "kiss-o'-death": its reference id is a code (RATE: slow
  down; DENY and RSTR: stop asking this server).
- `query` is one exchange over a connected UDP socket (the kernel then
  drops datagrams from any other address), with no listening socket.
- `Syncer` tries the servers in turn and steps the clock through an
  injected function when the offset exceeds `STEP_THRESHOLD`.
- `run_daemon`, as root, forks for every round a child that drops to an
  unprivileged user and does the network part; the child hands back a
  small JSON result through a pipe, which the root parent checks again
  before it steps the clock or writes the data partition. Retries back off
  from `RETRY_MIN` to `RETRY_MAX`; after a success it syncs again every
  `POLL_INTERVAL`.

    nutapp timesync --servers /etc/nut/system/ntp.servers --clock /data/clock
    nutapp timesync --query --server pool.ntp.org
    nutapp timesync --restore --clock /data/clock
"""

import argparse
import contextlib
import json
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

from nutapp.sdcard import writable, write_atomic

NTP_PORT = 123
DEFAULT_SERVERS = ["pool.ntp.org"]
DEFAULT_SERVERS_FILE = "/etc/nut/system/ntp.servers"
DEFAULT_CLOCK_FILE = "/data/clock"
DEFAULT_FLOOR_FILE = "/usr/share/nutapp/version"  # written when the image is built
UNPRIVILEGED = 65534  # nobody/nogroup: needs no /etc/passwd entry

PACKET_SIZE = 48
NTP_TO_UNIX = 2208988800  # seconds from 1900-01-01 to 1970-01-01
ERA = 1 << 32
VERSION = 4
MODE_CLIENT, MODE_SERVER = 3, 4
LEAP_UNSYNCHRONISED = 3

TIMEOUT = 3.0  # seconds to wait for one server's reply
MAX_ADDRESSES = 3  # addresses tried per server name
MAX_DELAY = 3.0  # seconds: a longer round trip gives no useful time
MAX_ROOT_DISTANCE = 5.0  # seconds: the server's own uncertainty
STEP_THRESHOLD = 0.25  # seconds: smaller offsets are left alone
RETRY_MIN, RETRY_MAX = 2.0, 300.0
POLL_INTERVAL = 1024.0
SAVE_INTERVAL = 3600.0


class SntpError(Exception):
    """A server gave no usable time."""


class BadReply(SntpError):
    """A reply that fails a check: ignored."""


class WrongOrigin(BadReply):
    """A reply to a request that is not ours (late, duplicated or forged)."""


class KissOfDeath(SntpError):
    """Stratum 0: the server tells the client to slow down or go away."""

    def __init__(self, code):
        SntpError.__init__(self, "kiss-o'-death %s" % code)
        self.code = code

    @property
    def denied(self):
        return self.code in ("DENY", "RSTR")


class Sample:
    """What one good reply says: our clock's `offset` from the server's
    (seconds to add), the round-trip `delay`, and the server's stratum."""

    def __init__(self, offset, delay, stratum, server=""):
        self.offset = offset
        self.delay = delay
        self.stratum = stratum
        self.server = server

    def __repr__(self):
        return "Sample(offset=%.6f, delay=%.6f, stratum=%d, server=%r)" % (
            self.offset, self.delay, self.stratum, self.server)


# --- the protocol, without I/O ------------------------------------------------

def make_request(nonce=None):
    """``(packet, nonce)``: a client request whose transmit timestamp is
    the 8 random bytes `nonce`; a reply must carry them as its origin."""
    if nonce is None:
        nonce = os.urandom(8)
    head = struct.pack("!BBbb", (0 << 6) | (VERSION << 3) | MODE_CLIENT, 0, 0, 0)
    return head + bytes(36) + nonce, nonce


def ntp_to_unix(raw):
    """Unix time (float) of an 8-byte NTP timestamp. Seconds with the top
    bit clear are taken to be in the era starting in 2036 (RFC 4330)."""
    seconds, fraction = struct.unpack("!II", raw)
    if not seconds & 0x80000000:
        seconds += ERA
    return seconds - NTP_TO_UNIX + fraction / float(ERA)


def unix_to_ntp(t):
    """The 8-byte NTP timestamp of unix time `t` (for servers in tests)."""
    seconds = int(math.floor(t))
    fraction = int((t - seconds) * ERA) & 0xFFFFFFFF
    return struct.pack("!II", (seconds + NTP_TO_UNIX) % ERA, fraction)


def parse_reply(packet, nonce, sent, elapsed):
    """Check a server's reply to the request carrying `nonce`, sent when our
    clock read `sent` (unix time) and answered `elapsed` seconds later (a
    monotonic interval); return a `Sample` or raise an `SntpError`."""
    if len(packet) < PACKET_SIZE:
        raise BadReply("short reply (%d bytes)" % len(packet))
    first, stratum = packet[0], packet[1]
    leap, version, mode = first >> 6, (first >> 3) & 7, first & 7
    if packet[24:32] != nonce:
        raise WrongOrigin("the reply's origin timestamp is not our request's")
    if mode != MODE_SERVER:
        raise BadReply("mode %d, not a server reply" % mode)
    if version not in (3, 4):
        raise BadReply("NTP version %d" % version)
    if stratum == 0:
        code = packet[12:16].decode("ascii", "replace").rstrip("\0")
        raise KissOfDeath(code if code.isalnum() else "?")
    if stratum > 15:
        raise BadReply("stratum %d: the server is not synchronised" % stratum)
    if leap == LEAP_UNSYNCHRONISED:
        raise BadReply("the server says its clock is not synchronised")
    root_delay, root_dispersion = struct.unpack("!II", packet[4:12])
    distance = root_delay / 65536.0 / 2 + root_dispersion / 65536.0
    if distance > MAX_ROOT_DISTANCE:
        raise BadReply("root distance %.1f s" % distance)
    if packet[32:40] == bytes(8) or packet[40:48] == bytes(8):
        raise BadReply("zero receive or transmit timestamp")
    received = ntp_to_unix(packet[32:40])
    transmitted = ntp_to_unix(packet[40:48])
    if not 0 <= elapsed <= MAX_DELAY:
        raise BadReply("round trip %.3f s" % elapsed)
    served = transmitted - received
    if not 0 <= served <= elapsed:
        raise BadReply("the server took %.3f s of a %.3f s round trip" % (served, elapsed))
    arrived = sent + elapsed
    offset = ((received - sent) + (transmitted - arrived)) / 2
    return Sample(offset, elapsed - served, stratum)


def parse_server(text):
    """``(host, port)`` of ``host``, ``host:port``, an IPv4 or IPv6 address
    or ``[IPv6]:port``; None when `text` is none of these."""
    text = text.strip()
    host, port = text, NTP_PORT
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        host, rest = text[1:close], text[close + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port = _port(rest[1:])
        if not _is_ipv6(host):
            return None
    elif text.count(":") == 1:
        host, port = text.split(":")
        port = _port(port)
    elif ":" in text:
        if not _is_ipv6(text):
            return None
    if port is None or not host:
        return None
    if ":" not in host and not _is_hostname(host):
        return None
    return host, port


def format_server(host, port):
    name = "[%s]" % host if ":" in host else host
    return name if port == NTP_PORT else "%s:%d" % (name, port)


def _port(text):
    if not text.isdigit() or not 0 < int(text) < 65536:
        return None
    return int(text)


def _is_ipv6(text):
    try:
        socket.inet_pton(socket.AF_INET6, text)
        return True
    except (OSError, ValueError):
        return False


def _is_hostname(name):
    if not 0 < len(name) <= 253:
        return False
    for label in name.rstrip(".").split("."):
        if not 0 < len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(c.isalnum() and c.isascii() or c == "-" for c in label):
            return False
    return True


def read_servers(path):
    """The servers listed in `path`, one a line (# comments); lines that
    are not servers are skipped. The defaults when the file is missing or
    lists none."""
    servers = []
    try:
        with open(path) as f:
            text = f.read(65536)
    except OSError:
        text = ""
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        parsed = parse_server(line) if line else None
        if parsed:
            servers.append(parsed)
    return servers or [parse_server(s) for s in DEFAULT_SERVERS]


# --- the network ----------------------------------------------------------------

def query(host, port=NTP_PORT, timeout=TIMEOUT, clock=time.time):
    """Ask one server (every address of its name in turn, up to
    `MAX_ADDRESSES`); return its `Sample`, or raise `SntpError` (the last
    address's reason) or `KissOfDeath`."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    except (OSError, UnicodeError) as e:
        raise SntpError("cannot resolve %s (%s)" % (host, e))
    error = SntpError("no address for %s" % host)
    for family, kind, proto, _, address in infos[:MAX_ADDRESSES]:
        try:
            sample = _exchange(family, kind, proto, address, timeout, clock)
        except KissOfDeath:
            raise
        except SntpError as e:
            error = e
            continue
        sample.server = format_server(address[0], address[1])
        return sample
    raise error


def _exchange(family, kind, proto, address, timeout, clock):
    with socket.socket(family, kind, proto) as sock:
        try:
            sock.connect(address)
            request, nonce = make_request()
            sent, start = clock(), time.monotonic()
            sock.send(request)
            deadline = start + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SntpError("no answer from %s" % address[0])
                sock.settimeout(left)
                try:
                    packet = sock.recv(1024)
                except socket.timeout:
                    continue
                elapsed = time.monotonic() - start
                try:
                    return parse_reply(packet, nonce, sent, elapsed)
                except WrongOrigin:
                    continue  # not the answer to this request: keep waiting
        except OSError as e:
            raise SntpError("%s: %s" % (address[0], e.strerror or e))


class Syncer:
    """Sets the clock from the first server that gives a good answer.

    `step(offset)` moves the clock; it is injected so that tests never touch
    the host's clock. Servers that answered DENY or RSTR are not asked
    again."""

    def __init__(self, servers, step, timeout=TIMEOUT, clock=time.time):
        self.servers = list(servers)
        self.step = step
        self.timeout = timeout
        self.clock = clock
        self.denied = set()

    def fetch(self):
        """The first good `Sample`; raise `SntpError` with every server's
        reason when none gave one."""
        reasons = []
        for host, port in self.servers:
            name = format_server(host, port)
            if name in self.denied:
                continue
            try:
                sample = query(host, port, self.timeout, self.clock)
            except KissOfDeath as e:
                if e.denied:
                    self.denied.add(name)
                reasons.append("%s: %s" % (name, e))
                continue
            except SntpError as e:
                reasons.append("%s: %s" % (name, e))
                continue
            sample.server = sample.server or name
            return sample
        raise SntpError("; ".join(reasons) or "no time server left to ask")

    def sync(self):
        """Fetch a sample and step the clock when it is off; return the
        sample and whether the clock was stepped."""
        sample = self.fetch()
        stepped = abs(sample.offset) > STEP_THRESHOLD
        if stepped:
            self.step(sample.offset)
        return sample, stepped


def step_clock(offset):
    """Move the system clock by `offset` seconds (needs CAP_SYS_TIME)."""
    time.clock_settime(time.CLOCK_REALTIME, time.time() + offset)


def set_clock(t):
    time.clock_settime(time.CLOCK_REALTIME, t)


# --- the last known time --------------------------------------------------------

def read_saved(path):
    """The unix time saved in `path`, or None."""
    try:
        with open(path) as f:
            text = f.read(64).strip()
    except OSError:
        return None
    if not text.isdigit() or len(text) > 12:
        return None
    return int(text)


def save_clock(path, now=None):
    """Write the current time to `path`, replacing it in one rename; the
    partition holding it is made writable for the moment it takes."""
    now = int(time.time() if now is None else now)
    with writable(os.path.dirname(os.path.abspath(path))):
        write_atomic(path, b"%d\n" % now, 0o644)
    return now


def floor_time(path):
    """The earliest believable time: when `path` (written at build) was
    last changed; 0 when it is missing."""
    try:
        return int(os.stat(path).st_mtime)
    except OSError:
        return 0


def restore(saved, floor, now, set_time):
    """Move the clock forward to the later of `saved` and `floor` when it
    is behind; never back. Return the time set, or None."""
    target = max(saved or 0, floor or 0)
    if now >= target:
        return None
    set_time(target)
    return target


# --- the daemon -----------------------------------------------------------------

def fetch_unprivileged(servers, denied, uid, gid, timeout=TIMEOUT):
    """One round of `Syncer.fetch` in a child process running as `uid`:`gid`
    (None: as we are); return ``(sample or None, reason, denied names)``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, ask, report, exit
        status = 1
        try:
            os.close(read_end)
            if uid is not None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            syncer = Syncer(servers, step=None, timeout=timeout)
            syncer.denied = set(denied)
            try:
                sample = syncer.fetch()
                result = {"offset": sample.offset, "delay": sample.delay,
                          "stratum": sample.stratum, "server": sample.server}
            except SntpError as e:
                result = {"error": str(e)}
            result["denied"] = sorted(syncer.denied)
            os.write(write_end, json.dumps(result).encode()[:65536])
            status = 0
        finally:
            os._exit(status)

    os.close(write_end)
    data = b""
    deadline = time.monotonic() + (timeout * MAX_ADDRESSES + 5) * max(1, len(servers))
    try:
        while len(data) <= 65536:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_end)
        _reap(pid)
    return _check_result(data, denied)


def _reap(pid):
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _check_result(data, denied):
    """The child's report, checked again by the parent: it came from the
    network, through a process that could have been taken over."""
    try:
        result = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "the time query failed", denied
    if not isinstance(result, dict):
        return None, "the time query failed", denied
    new_denied = result.get("denied")
    if isinstance(new_denied, list) and all(isinstance(n, str) for n in new_denied):
        denied = set(new_denied[:64])
    if "error" in result:
        return None, str(result["error"])[:500], denied
    offset, delay = result.get("offset"), result.get("delay")
    stratum, server = result.get("stratum"), result.get("server")
    numbers = [x for x in (offset, delay) if isinstance(x, (int, float))
               and not isinstance(x, bool) and math.isfinite(x)]
    if (len(numbers) != 2 or not 0 <= delay <= MAX_DELAY or abs(offset) > 2.0 ** 40
            or not isinstance(stratum, int) or not 1 <= stratum <= 15
            or not isinstance(server, str) or len(server) > 300):
        return None, "the time query gave a malformed result", denied
    return Sample(offset, delay, stratum, server), None, denied


class Daemon:
    """The root side: sync rounds with back-off, the clock's steps, and the
    saved time. `fetch`, `step`, `save` and `clock` are injectable."""

    def __init__(self, servers_path, clock_path, floor, fetch, step, save,
                 log, clock=time.time):
        self.servers_path = servers_path
        self.clock_path = clock_path
        self.floor = floor
        self.fetch = fetch
        self.step = step
        self.save = save
        self.log = log
        self.clock = clock
        self.denied = set()
        self.retry = RETRY_MIN
        self.failures = 0
        self.synced = False

    def round(self):
        """One sync round; return the seconds until the next one."""
        servers = read_servers(self.servers_path)
        sample, reason, self.denied = self.fetch(servers, self.denied)
        if sample is None:
            self.failures += 1
            # One line at first, then rarely: an offline box should not
            # fill the log.
            if self.failures in (1, 10) or self.failures % 100 == 0:
                self.log("no usable time yet (attempt %d): %s" % (self.failures, reason))
            wait, self.retry = self.retry, min(self.retry * 2, RETRY_MAX)
            return wait
        self.retry = RETRY_MIN
        self.failures = 0
        target = self.clock() + sample.offset
        if target < self.floor:
            self.log("%s gave a time before this image was built (%s): ignored"
                     % (sample.server, _utc(target)))
            return RETRY_MAX
        if abs(sample.offset) > STEP_THRESHOLD:
            self.step(sample.offset)
            self.log("clock set to %s (stepped %+.3f s) from %s, stratum %d"
                     % (_utc(target), sample.offset, sample.server, sample.stratum))
        elif not self.synced:
            self.log("clock in step with %s (offset %+.3f s), stratum %d"
                     % (sample.server, sample.offset, sample.stratum))
        self.synced = True
        return POLL_INTERVAL

    def save_now(self):
        if not self.clock_path:
            return
        try:
            self.save(self.clock_path)
        except (OSError, subprocess.CalledProcessError) as e:
            self.log("cannot save the time in %s: %s" % (self.clock_path, e))

    def run(self, stopping):
        """Rounds and hourly saves until `stopping()` is true."""
        next_round = time.monotonic()
        next_save = time.monotonic() + SAVE_INTERVAL
        while not stopping():
            now = time.monotonic()
            if now >= next_round:
                next_round = time.monotonic() + self.round()
            if now >= next_save:
                self.save_now()
                next_save = now + SAVE_INTERVAL
            wait = min(next_round, next_save) - time.monotonic()
            if wait > 0:
                time.sleep(wait)


def _utc(t):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


# --- the command line -----------------------------------------------------------

def main(argv=None, prog="nutapp timesync"):
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Keep the clock: SNTP from the provisioned time servers, and the last "
        "known time saved on the data partition."))
    parser.add_argument("--servers", default=DEFAULT_SERVERS_FILE, metavar="FILE",
                        help="time servers, one host[:port] a line (default %(default)s; "
                        "pool.ntp.org when missing)")
    parser.add_argument("--server", action="append", metavar="HOST[:PORT]",
                        help="ask this server instead of the file's (repeatable)")
    parser.add_argument("--clock", default=DEFAULT_CLOCK_FILE, metavar="FILE",
                        help="where the last known time is kept (default %(default)s)")
    parser.add_argument("--floor-file", default=DEFAULT_FLOOR_FILE, metavar="FILE",
                        help="the clock is never set before this file's time "
                        "(default %(default)s)")
    parser.add_argument("--user", type=int, default=UNPRIVILEGED, metavar="UID",
                        help="user (and group) the network part runs as (default %(default)s)")
    parser.add_argument("--pidfile", metavar="FILE", help="write the daemon's pid here")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--query", action="store_true",
                      help="print the clock's offset from the first server that answers")
    what.add_argument("--once", action="store_true", help="one sync, then exit")
    what.add_argument("--restore", action="store_true",
                      help="move the clock forward to the saved time if it is behind")
    what.add_argument("--save", action="store_true", help="save the current time")
    args = parser.parse_args(argv)

    def log(message):
        sys.stderr.write("timesync: %s\n" % message)
        sys.stderr.flush()

    if args.restore:
        saved = read_saved(args.clock)
        done = restore(saved, floor_time(args.floor_file), time.time(), set_clock)
        if done:
            log("clock restored to %s (the last known time)" % _utc(done))
        return 0
    if args.save:
        try:
            save_clock(args.clock)
        except (OSError, subprocess.CalledProcessError) as e:
            log("cannot save the time in %s: %s" % (args.clock, e))
            return 1
        return 0

    if args.server:
        servers = [parse_server(s) for s in args.server]
        if None in servers:
            parser.error("not a host[:port]: %s" % args.server[servers.index(None)])
    else:
        servers = None
    if args.query:
        try:
            sample = Syncer(servers or read_servers(args.servers), step=None).fetch()
        except SntpError as e:
            log(str(e))
            return 1
        print("%s offset %+.6f s delay %.6f s stratum %d" % (
            sample.server, sample.offset, sample.delay, sample.stratum))
        return 0

    uid = args.user if os.geteuid() == 0 else None

    def fetch(listed, denied):
        return fetch_unprivileged(servers or listed, denied, uid, uid)

    daemon = Daemon(args.servers, args.clock, floor_time(args.floor_file), fetch,
                    step_clock, save_clock, log)
    if args.once:
        daemon.clock_path = None
        daemon.round()
        return 0 if daemon.synced else 1

    stop = []

    def on_term(signum, frame):
        stop.append(signum)
        raise _Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    try:
        daemon.run(lambda: bool(stop))
    except _Stop:
        pass
    finally:
        if args.pidfile:
            with contextlib.suppress(OSError):
                os.unlink(args.pidfile)
    # Shutting down: the time the next boot starts from.
    daemon.save_now()
    return 0


class _Stop(Exception):
    pass


if __name__ == "__main__":
    sys.exit(main())
