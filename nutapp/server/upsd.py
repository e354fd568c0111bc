"""`nutapp upsd`: NUT's network server on a plain epoll loop.

Start-up follows NUT's order: resolve the run-as user, chroot (-r), read
upsd.conf, bind the listeners, drop privileges, then read ups.conf,
upsd.users and the TLS key as the unprivileged user. Each client is a
`Client` driving a `nutapp.core.session.Session`; each UPS's driver is
reached over its Unix socket in the state path, reconnecting as needed.

Theory of operation: one thread runs `Server.run`, a loop around
`select.epoll`. Every open descriptor (listeners, clients, driver links, the
signal wake-up pipe) is registered with the function that handles its
events: a client's is a closure that answers a repeated GET VAR without
leaving it (see `Client.event_handler`), everything else goes to an
`on_event` method. Client reads are split into lines at once; the replies
to one read go out in one `send` (in a few when that read is all there is
to do: see `Client.data_received`), and whatever the kernel does not take
waits in the client's `out` buffer until the socket is writable again.
STARTTLS wraps the socket's bytes in an `ssl.SSLObject` over two
`MemoryBIO`s, so the handshake and the records go through the same
non-blocking reads and writes. Timers are few and coarse: a 1-second tick
(idle sweeps, handshake time-outs, `Upsd.tick`) and the driver reconnect
delays. Signals only set flags, and `signal.set_wakeup_fd` makes epoll
return so that the loop acts on them. asyncio's event loop and transports
cost 4-5 us per request-response request on top of the kernel's work; this
loop costs about 1 (bench/).

Memory stays bounded under abuse: lines are capped, a client that does not
read its replies stops being read (and is dropped when its unsent replies
pass MAX_WRITE_BUFFER or it stays idle), connections are capped globally and
per source address.
"""

import argparse
import errno
import ipaddress
import logging
import os
import select
import signal
import socket
import sys
import time
import uuid

from nutapp import __version__, NUT_COMPAT_VERSION, paths
from nutapp import daemon
from nutapp.core.config import UpsConf, UpsdConf
from nutapp.core.desc import Descriptions
from nutapp.core.errors import ConfigError
from nutapp.core.session import Session
from nutapp.core.upsd import Upsd
from nutapp.core.users import Users

log = logging.getLogger("nutapp.upsd")

# Events taken per epoll wait. Python's default (1023) makes every wait
# allocate and free a 12 KB array; the rest simply come with the next wait.
MAX_EVENTS = 64
PARTS = 4  # sends at most for the replies to one read (see data_received)
# Bytes of the first read on the common path: small enough that the bytes
# object comes from Python's small-object allocator, not malloc + realloc
# (about 0.2 us less per read of a request). A read that fills it is
# followed at once by one of MORE_READ, so a pipelined batch is still
# answered as one.
HOT_READ = 448
MORE_READ = 4096
MAX_ENCODED = 32  # encoded GET VAR replies kept per connection
MAX_LINE = 4096  # bytes of one request line; NUT's 32 words x 512 is never needed
MAX_WRITE_BUFFER = 256 * 1024  # unread replies before a client is dropped
PAUSE_READING = 64 * 1024  # unsent bytes past which a client's requests wait
RESUME_READING = 16 * 1024  # ...until its unsent bytes fall to this
RECV_BUFFER = 64 * 1024  # one receive buffer, shared by all clients
MAX_DRIVER_LINE = 64 * 1024
DRIVER_RETRY = 1.0
TLS_HANDSHAKE_TIMEOUT = 10.0
ACCEPT_BATCH = 64  # connections accepted per listener event
# Imported only when needed, so imported before a chroot hides them.
CHROOT_PRELOAD = ("nutapp.server.tls", "nutapp.clients.tls", "nutapp.passwords",
                  "cryptography.x509", "cryptography.x509.oid")

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
_AGAIN = (BlockingIOError, InterruptedError)


class RateLimitedLog:
    """At most `burst` messages per `period` seconds per (event, source)."""

    def __init__(self, burst=5, period=60.0, max_keys=1024):
        self.burst = burst
        self.period = period
        self.max_keys = max_keys
        self.keys = {}

    # Events anyone can cause without credentials, and their log level.
    LIMITED = {"auth": logging.WARNING, "tls": logging.WARNING, "conn": logging.WARNING,
               "tls-on": logging.INFO}

    def __call__(self, event, msg, source=None):
        level = self.LIMITED.get(event)
        if level is None:
            log.info("%s", msg)
            return
        now = time.monotonic()
        key = (event, source)
        e = self.keys.get(key)
        if e is None or now - e[0] > self.period:
            if e is not None and e[2]:
                log.warning("(%d more %s messages from %s suppressed)", e[2], event, source)
            if len(self.keys) >= self.max_keys:
                self.keys.clear()
            e = [now, 0, 0]
            self.keys[key] = e
        e[1] += 1
        if e[1] <= self.burst:
            log.log(level, "%s", msg)
        else:
            e[2] += 1


class Client:
    """One client connection: its socket, its Session and its buffers."""

    __slots__ = ("server", "sock", "fd", "session", "buf", "out", "discarding",
                 "reading", "mask", "last_activity", "addr", "source", "line_started",
                 "closing", "closed", "ssl", "inbio", "outbio", "handshake_started",
                 "encoded", "active")

    def __init__(self, server, sock, addr):
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.session = None
        self.buf = b""
        self.out = b""  # bytes for the socket the kernel has not taken yet
        self.discarding = False
        self.reading = True
        self.mask = EPOLLIN
        self.last_activity = time.monotonic()
        self.addr = addr
        self.source = "?"
        self.line_started = None  # when the unfinished request line began
        self.closing = False  # close once `out` is sent
        self.closed = False
        self.ssl = None  # the SSLObject once STARTTLS began
        self.inbio = self.outbio = None
        self.handshake_started = None  # set while the TLS handshake runs
        # A repeated GET VAR's exact request bytes -> (line, reply, its bytes):
        # the session decides whether the reply still holds (by identity),
        # this only spares splitting, decoding and encoding it again.
        self.encoded = {}  # (cleared, never replaced: event_handler holds it)
        self.active = False  # a request came since the tick last looked

    # -- events -------------------------------------------------------------
    def event_handler(self):
        """The function the loop calls with this socket's epoll events.

        The common case is kept short and its names in local variables: a
        plaintext request arrives while nothing waits to be sent, and is
        often a repeat of a GET VAR whose encoded reply still holds.
        """
        fd = self.fd
        # os.read/os.write on the descriptor: about 0.3 us less per request
        # than the socket's recv_into + bytes() and send (bench/variants.py).
        read = os.read
        write = os.write
        encoded = self.encoded
        remembered = self.session.remembered
        on_event = self.on_event

        def handle(events):
            if events != EPOLLIN or self.ssl is not None:
                return on_event(events)
            try:
                data = read(fd, HOT_READ)
            except _AGAIN:
                return
            except OSError:
                data = b""
            if not data:
                return self.abort()
            if len(data) == HOT_READ:
                try:
                    data += read(fd, MORE_READ)
                except OSError:  # none yet (the next wait tells of an error)
                    pass
            if not self.buf and not self.out:
                hit = encoded.get(data)
                if hit is not None and remembered(hit[0]) is hit[1]:
                    self.active = True
                    reply = hit[2]
                    try:
                        sent = write(fd, reply)
                    except _AGAIN:
                        sent = 0
                    except OSError:
                        return self.abort()
                    if sent != len(reply):
                        self._queue(reply[sent:])
                    return
            self.data_received(data)

        handle.owner = self
        return handle

    def on_event(self, events):
        if events & EPOLLOUT and self.out:
            self._flush()
            if self.closed:
                return
        if events & ~EPOLLOUT:  # readable, or hung up / in error: recv tells
            if self.reading:
                self._read()
            else:
                self.abort()

    def _read(self):
        srv = self.server
        view = srv.recv_view
        try:
            n = self.sock.recv_into(view)
        except _AGAIN:
            return
        except OSError:
            self.abort()
            return
        if not n:
            if self.handshake_started is not None:
                self.handshake_failed(ConnectionResetError("connection closed during "
                                                           "the handshake"))
            else:
                self.abort()
            return
        data = bytes(view[:n])
        if self.ssl is None:
            self.data_received(data)
        else:
            self._tls_received(data)

    # -- requests -----------------------------------------------------------
    def data_received(self, data):
        session = self.session
        if session is None:
            return
        now = self.last_activity = time.monotonic()
        srv = self.server
        srv.core.now = now
        out = []
        whole = not self.buf and not self.discarding  # data starts a request
        lines = (self.buf + data if self.buf else data).split(b"\n")
        rest = lines.pop()  # what follows the last newline: an unfinished line
        completed = bool(lines)
        # Several requests in one read while no other socket waits: send
        # their replies in PARTS parts, so that the client starts on the
        # first while the rest are made (NUT's C upsd sends each reply on its
        # own; one send per reply costs Python more than it gains). With
        # other sockets waiting, one send per read keeps the system calls few.
        part = 0
        if len(lines) > 1 and srv.one_ready and self.ssl is None:
            part = (len(lines) + PARTS - 1) // PARTS
        held = b""
        for i, line in enumerate(lines):
            if self.discarding:  # the end of an overlong line
                self.discarding = False
                continue
            if len(line) > MAX_LINE:
                out.append("ERR INVALID-ARGUMENT\n")
                continue
            out.append(session.handle_line(line.decode("latin-1")))
            if session.closing or session.start_tls:
                rest = b""
                break
            if len(out) == part:
                self._send("".join(out).encode("latin-1", "replace"))
                if self.closed:
                    return
                out = []
                if self.out:
                    # The kernel is full: the rest of this read waits,
                    # unanswered, until the socket drains (see _flush).
                    held = b"".join(x + b"\n" for x in lines[i + 1:])
                    break
        if len(rest) > MAX_LINE and not held:  # (held: checked when answered)
            if not self.discarding:
                out.append("ERR INVALID-ARGUMENT\n")
                srv.ratelog("conn", "overlong line from %s dropped" % self.addr, self.addr)
            self.discarding = True
            rest = b""
        self.buf = held + rest
        # A request line must be finished within IDLE_TIMEOUT of its first
        # byte: a client dribbling a byte now and then is not idle, but holds
        # a connection slot for nothing.
        if not rest and not self.discarding:
            self.line_started = None
        elif self.line_started is None or completed:
            self.line_started = now
        if out:
            if whole and not rest and len(lines) == 1 and len(out) == 1:
                line = lines[0].decode("latin-1")
                if session.remembered(line) is out[0]:
                    if len(self.encoded) >= MAX_ENCODED:
                        self.encoded.clear()
                    self.encoded[data] = (line, out[0], out[0].encode("latin-1", "replace"))
            self.write("".join(out).encode("latin-1", "replace"))
            if self.closed:
                return
        if session.closing:
            self.close()
        elif session.start_tls:
            session.start_tls = False
            self._start_tls()

    # -- writing ------------------------------------------------------------
    def write(self, data):
        """Send application bytes (through TLS once it is on)."""
        if self.ssl is not None:
            self.ssl.write(data)
            data = self.outbio.read()
        self._send(data)

    def _send(self, data):
        if not data or self.closed:
            return
        if not self.out:
            try:
                n = self.sock.send(data)
            except _AGAIN:
                n = 0
            except OSError:
                self.abort()
                return
            if n == len(data):
                return
            data = data[n:]
        self._queue(data)

    def _queue(self, data):
        """Keep what the kernel did not take, until the socket is writable."""
        self.out += data
        if len(self.out) > MAX_WRITE_BUFFER:
            self.server.ratelog("conn", "dropping %s: it does not read its replies"
                                % self.addr, self.addr)
            self.abort()
            return
        if len(self.out) > PAUSE_READING:
            # The client does not read: stop reading its requests until it does.
            self.reading = False
        self._update_mask()

    def _flush(self):
        try:
            n = self.sock.send(self.out)
        except _AGAIN:
            return
        except OSError:
            self.abort()
            return
        self.out = self.out[n:]
        if not self.out and self.closing:
            self.abort()
            return
        if not self.reading and len(self.out) <= RESUME_READING and not self.closing:
            self.reading = True
        self._update_mask()
        if not self.out and b"\n" in self.buf:  # requests held by data_received
            self.data_received(b"")

    def _update_mask(self):
        mask = (EPOLLIN if self.reading else 0) | (EPOLLOUT if self.out else 0)
        if mask != self.mask:
            self.mask = mask
            self.server.epoll.modify(self.fd, mask)

    # -- TLS ----------------------------------------------------------------
    def _start_tls(self):
        import ssl

        srv = self.server
        self.inbio = ssl.MemoryBIO()
        self.outbio = ssl.MemoryBIO()
        self.ssl = srv.tls_context.wrap_bio(self.inbio, self.outbio, server_side=True)
        self.handshake_started = time.monotonic()

    def _tls_received(self, data):
        import ssl

        self.inbio.write(data)
        if self.handshake_started is not None:
            try:
                self.ssl.do_handshake()
            except ssl.SSLWantReadError:
                self._send(self.outbio.read())
                return
            except (ssl.SSLError, OSError, ValueError) as e:
                self._send(self.outbio.read())  # the alert, if any
                self.handshake_failed(e)
                return
            self._send(self.outbio.read())
            if self.closed:
                return
            self._tls_on()
        chunks = []
        while True:
            try:
                chunk = self.ssl.read(RECV_BUFFER)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunks.append(None)
                break
            except (ssl.SSLError, OSError):
                self.abort()
                return
            if not chunk:
                chunks.append(None)
                break
            chunks.append(chunk)
        pending = self.outbio.read()  # session tickets, key updates
        if pending:
            self._send(pending)
        eof = chunks and chunks[-1] is None
        data = b"".join(c for c in chunks if c is not None)
        if data and not self.closed:
            self.data_received(data)
        if eof and not self.closed:
            self.abort()

    def _tls_on(self):
        srv = self.server
        self.handshake_started = None
        session = self.session
        session.tls = True
        cert = self.ssl.getpeercert()
        if cert:
            session.tls_peer = _subject_cn(cert)
        srv.ratelog("tls-on", "client %s: TLS on (%s%s)" % (
            self.addr, self.ssl.version() or "?",
            ", certificate " + session.tls_peer if session.tls_peer else ""),
            self.addr)
        self.last_activity = time.monotonic()

    def handshake_failed(self, e):
        self.server.ratelog("tls", "TLS handshake with %s failed: %s"
                            % (self.addr, _tls_reason(e)), self.addr)
        self.abort()

    # -- closing ------------------------------------------------------------
    def close(self):
        """Close once the replies are sent (LOGOUT)."""
        if not self.out:
            self.abort()
            return
        self.closing = True
        self.reading = False
        self._update_mask()

    def abort(self):
        """Close now, unsent replies or not."""
        if self.closed:
            return
        self.closed = True
        srv = self.server
        try:
            srv.epoll.unregister(self.fd)
        except (OSError, ValueError):
            pass
        srv.handlers.pop(self.fd, None)
        self.sock.close()
        self.out = b""
        if self.session is not None:
            self.session.close()
            self.session = None
            srv.clients.discard(self)
            n = srv.per_source.get(self.source, 1) - 1
            if n <= 0:
                srv.per_source.pop(self.source, None)
            else:
                srv.per_source[self.source] = n


def _tls_reason(e):
    s = str(e) or e.__class__.__name__
    return s.splitlines()[0][:200]


def _subject_cn(cert):
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return "(no CN)"


class Listener:
    def __init__(self, server, sock):
        self.server = server
        self.sock = sock

    def on_event(self, events):
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peer = self.sock.accept()
            except _AGAIN:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.server.ratelog("conn", "can't accept a connection: %s"
                                        % (e.strerror or e), "accept")
                return
            self.server.accepted(conn, peer)


class DriverLink:
    """The connection to one UPS's driver over its Unix socket."""

    def __init__(self, server, ups):
        self.server = server
        self.ups = ups
        self.sock = None
        self.fd = None
        self.buf = b""
        self.out = b""
        self.mask = EPOLLIN
        self.warned = False
        self.cancelled = False
        self.discarding = False

    def connect(self):
        if self.cancelled:
            return
        srv = self.server
        ups = self.ups
        path = paths.driver_socket(srv.statepath, ups.driver, ups.name)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except OSError as e:
            s.close()
            if not self.warned:
                log.warning("can't connect to UPS [%s] (%s): %s", ups.name, path,
                            e.strerror or e)
                self.warned = True
            srv.call_later(DRIVER_RETRY, self.connect)
            return
        self.warned = False
        self.sock = s
        self.fd = s.fileno()
        self.buf = self.out = b""
        self.discarding = False
        self.mask = EPOLLIN
        srv.handlers[self.fd] = self.on_event
        srv.epoll.register(self.fd, EPOLLIN)
        sock = s

        def send(line):
            if self.sock is not sock:
                return False
            self._send(line.encode("latin-1", "replace"))
            return True

        srv.core.now = time.monotonic()
        ups.driver_connected(send, srv.core.now)
        log.info("connected to UPS [%s]: %s", ups.name, os.path.basename(path))
        send("DUMPALL\n")

    def _send(self, data):
        if not self.out:
            try:
                n = self.sock.send(data)
            except _AGAIN:
                n = 0
            except OSError:
                # Not from inside the core's call: the loop sees the link go.
                self.server.call_later(0, self.lost)
                return
            if n == len(data):
                return
            data = data[n:]
        self.out += data
        self._update_mask()

    def _update_mask(self):
        mask = EPOLLIN | (EPOLLOUT if self.out else 0)
        if mask != self.mask and self.sock is not None:
            self.mask = mask
            self.server.epoll.modify(self.fd, mask)

    def on_event(self, events):
        if events & EPOLLOUT and self.out:
            try:
                n = self.sock.send(self.out)
            except _AGAIN:
                n = 0
            except OSError:
                self.lost()
                return
            self.out = self.out[n:]
            self._update_mask()
        if not events & ~EPOLLOUT:
            return
        try:
            data = self.sock.recv(RECV_BUFFER)
        except _AGAIN:
            return
        except OSError:
            self.lost()
            return
        if not data:
            self.lost()
            return
        lines = (self.buf + data).split(b"\n")
        rest = lines.pop()
        core = self.server.core
        core.now = time.monotonic()
        for line in lines:
            if self.discarding:  # the end of an overlong line: skip it
                self.discarding = False
                continue
            if len(line) > MAX_DRIVER_LINE:
                continue
            core.driver_line(self.ups, line.decode("latin-1"))
            if self.sock is None:
                return
        if len(rest) > MAX_DRIVER_LINE:
            self.discarding = True
            rest = b""
        self.buf = rest

    def _close(self):
        s, self.sock = self.sock, None
        if s is None:
            return False
        try:
            self.server.epoll.unregister(self.fd)
        except (OSError, ValueError):
            pass
        self.server.handlers.pop(self.fd, None)
        s.close()
        self.out = self.buf = b""
        self.ups.driver_lost()
        return True

    def lost(self):
        if self._close():  # once per connection, however it is noticed
            log.warning("lost connection to driver of UPS [%s]", self.ups.name)
            self.server.call_later(DRIVER_RETRY, self.connect)

    def cancel(self):
        self.cancelled = True
        self._close()


class SignalPipe:
    """The read end of signal.set_wakeup_fd's pipe: wakes epoll on a signal."""

    def __init__(self, server, fd):
        self.server = server
        self.fd = fd

    def on_event(self, events):
        try:
            while os.read(self.fd, 512):
                pass
        except OSError:
            pass


class Server:
    def __init__(self, conf, statepath):
        self.conf = conf
        self.statepath = statepath
        self.clients = set()
        self.per_source = {}
        self.recv_view = memoryview(bytearray(RECV_BUFFER))
        self.listen_socks = []
        self.driver_tasks = {}
        self.tls_context = None
        self.ratelog = RateLimitedLog()
        self.core = Upsd(conf, Users(), version=NUT_COMPAT_VERSION)
        self.core.make_id = lambda: str(uuid.uuid4()).upper()
        self.core.log = lambda event, msg, source=None: self.ratelog(
            event, msg, source or event)
        self.core.addr_allowed = _addr_allowed
        self.core.source_key = _source_key
        self.epoll = None
        self.handlers = {}  # fd -> function called with the fd's epoll events
        self.one_ready = False  # the last epoll wait returned one descriptor
        self.timers = []  # [when, callback], few: driver reconnects
        self.stopping = False
        self.reload_wanted = False
        self.tick_due = False
        self.due = False  # one of the three above, or a new timer

    # -- start-up steps -----------------------------------------------------
    def bind(self):
        """Open every LISTEN socket (as root, before the privilege drop)."""
        wanted = []
        default = not self.conf.listen
        for host, port in self.conf.listeners():
            if host == "*":
                wanted += [("::", port), ("0.0.0.0", port)]
            else:
                wanted.append((host, port))
        for host, port in wanted:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                           flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV)
                fam, typ, proto, _, sa = infos[0]
                s = socket.socket(fam, typ, proto)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(sa)
                s.listen(128)
                s.setblocking(False)
            except OSError as e:
                msg = "can't listen on %s port %d: %s" % (host, port, e.strerror or e)
                if default and host == "::1" or self.conf.allow_not_all_listeners:
                    log.warning("%s", msg)
                    continue
                raise SystemExit(msg)
            self.listen_socks.append(s)
            log.info("listening on %s port %d", host, port)
        if not self.listen_socks:
            raise SystemExit("no listening socket could be opened")

    def load(self, first=False):
        """Read ups.conf and upsd.users; on reload keep the old ones on error."""
        try:
            daemon.check_secret_file(paths.conffile("upsd.users"), "users file")
            upsconf = UpsConf.parse(_read(paths.conffile("ups.conf")),
                                    paths.conffile("ups.conf"), warn=log.warning)
            users = Users.parse(_read(paths.conffile("upsd.users")),
                                paths.conffile("upsd.users"), warn=log.warning)
        except (ConfigError, OSError, daemon.InsecureFile) as e:
            if first:
                raise SystemExit(str(e))
            log.error("reload failed, keeping the running configuration: %s", e)
            return False
        if not upsconf.ups and not self.conf.allow_no_device:
            msg = "no UPS defined in ups.conf (set ALLOW_NO_DEVICE to start anyway)"
            if first:
                raise SystemExit(msg)
            log.error("reload failed: %s", msg)
            return False
        _install_password_verifier(users)
        _warn_bad_allowfrom(users)
        self.core.users = users
        for s in self.core.sessions:
            s.user = None  # credentials are checked again against the new file
        added, removed = self.core.set_ups_table(list(upsconf.ups.values()))
        for name in removed:
            link = self.driver_tasks.pop(name.lower(), None)
            if link:
                link.cancel()
            log.info("UPS [%s] removed", name)
        for ups in self.core.ups.values():
            if ups.name.lower() not in self.driver_tasks:
                link = self.driver_tasks[ups.name.lower()] = DriverLink(self, ups)
                link.connect()
        if not first:
            log.info("reloaded ups.conf and upsd.users (%d UPS, %d users)",
                     len(self.core.ups), len(users.users))
        return True

    def load_descriptions(self):
        path = paths.datafile("cmdvartab")
        if path:
            try:
                self.core.descriptions = Descriptions.parse(_read(path))
            except Exception as e:  # a broken data file only costs descriptions
                log.warning("can't read %s: %s", path, e)

    # -- clients ------------------------------------------------------------
    def accepted(self, conn, peer):
        addr = peer[0] if isinstance(peer, tuple) and peer else "unix"
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
        source = _source_key(addr)
        if len(self.clients) >= self.conf.maxconn:
            self.ratelog("conn", "refused %s: MAXCONN (%d) reached"
                         % (addr, self.conf.maxconn), addr)
            conn.close()
            return
        if self.per_source.get(source, 0) >= self.conf.maxconn_per_source:
            self.ratelog("conn", "refused %s: too many connections from that address" % addr,
                         addr)
            conn.close()
            return
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        c = Client(self, conn, addr)
        c.source = source
        self.per_source[source] = self.per_source.get(source, 0) + 1
        self.clients.add(c)
        c.session = Session(self.core, addr)
        self.handlers[c.fd] = c.event_handler()
        self.epoll.register(c.fd, EPOLLIN)

    # -- main loop ----------------------------------------------------------
    def call_later(self, delay, callback):
        self.timers.append([time.monotonic() + delay, callback])
        self.due = True

    def _stop(self, signum=None, frame=None):
        self.stopping = self.due = True

    def _reload(self, signum=None, frame=None):
        self.reload_wanted = self.due = True

    def _alarm(self, signum=None, frame=None):
        self.tick_due = self.due = True  # and epoll returns for the wake-up pipe

    def run(self, on_ready=None):
        self.epoll = select.epoll()
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        self.handlers[rfd] = SignalPipe(self, rfd).on_event
        self.epoll.register(rfd, EPOLLIN)
        for s in self.listen_socks:
            self.handlers[s.fileno()] = Listener(self, s).on_event
            self.epoll.register(s.fileno(), EPOLLIN)
        old = {}
        for sig, fn in ((signal.SIGTERM, self._stop), (signal.SIGINT, self._stop),
                        (signal.SIGHUP, self._reload), (signal.SIGALRM, self._alarm)):
            old[sig] = signal.signal(sig, fn)
        # The tick's clock: epoll then waits without a timeout, which spares
        # the kernel a timer set up and torn down on every wait.
        signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)
        try:
            self.load(first=True)
            self.load_descriptions()
            if on_ready:
                on_ready()
            self._loop()
            log.info("signal received, exiting")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for sig, fn in old.items():
                signal.signal(sig, fn)
            signal.set_wakeup_fd(old_wakeup)
            for c in list(self.clients):
                c.abort()
            for link in self.driver_tasks.values():
                link.cancel()
            for s in self.listen_socks:
                s.close()
            self.epoll.close()
            os.close(rfd)
            os.close(wfd)

    def _loop(self):
        poll = self.epoll.poll
        handlers = self.handlers
        monotonic = time.monotonic
        while not self.stopping:
            self.due = False
            if self.reload_wanted:
                self.reload_wanted = False
                self.load()
            now = monotonic()
            if self.tick_due:
                self.tick_due = False
                self._tick(now)
            timeout = -1  # SIGALRM wakes the loop every second
            if self.timers:
                if self._run_timers(now):
                    continue
                wake = min(t[0] for t in self.timers)
                timeout = wake - now if wake > now else 0
            # Serve events until a signal, a new timer or the next timer's
            # time asks for the housekeeping above: one flag to test per wait.
            while not self.due:
                ready = poll(timeout, MAX_EVENTS)
                self.one_ready = len(ready) == 1
                for fd, events in ready:
                    h = handlers.get(fd)
                    if h is None:
                        continue
                    try:
                        h(events)
                    except Exception:  # one broken connection never stops the server
                        log.exception("error handling descriptor %d", fd)
                        owner = getattr(h, "owner", None) or getattr(h, "__self__", None)
                        if isinstance(owner, Client):
                            owner.abort()
                        elif isinstance(owner, DriverLink):
                            owner.lost()
                if timeout >= 0:
                    break

    def _run_timers(self, now):
        due = [t for t in self.timers if t[0] <= now]
        if due:
            self.timers = [t for t in self.timers if t[0] > now]
            for t in due:
                t[1]()
        return bool(due)

    def _tick(self, now):
        self.core.now = now
        self.core.tick()
        limit = now - self.conf.idle_timeout
        tls_limit = now - TLS_HANDSHAKE_TIMEOUT
        for c in list(self.clients):
            if c.closed:
                continue
            if c.active:  # answered from the short path, which keeps no time
                c.active = False
                c.last_activity = now
            if c.handshake_started is not None and c.handshake_started < tls_limit:
                c.handshake_failed(TimeoutError("handshake timed out"))
            elif c.last_activity < limit:
                c.abort()
            elif c.line_started is not None and c.line_started < limit:
                self.ratelog("conn", "dropping %s: a request line took longer than "
                             "IDLE_TIMEOUT" % c.addr, c.addr)
                c.abort()


def _source_key(addr):
    """Per-source limits count an IPv6 client by its /64 (one host usually
    owns all of it), an IPv4 client by its address."""
    if ":" not in addr:
        return addr
    try:
        return str(ipaddress.ip_network(addr + "/64", strict=False))
    except ValueError:
        return addr


def _addr_allowed(user, addr):
    import ipaddress

    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    for net in user.allowfrom:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False


def _warn_bad_allowfrom(users):
    """An allowfrom word that is no network never matches: say so at load,
    or the user meets only ACCESS-DENIED."""
    import ipaddress

    for user in users.users.values():
        for net in user.allowfrom:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                log.warning("upsd.users: user [%s]: allowfrom %r is not a network and "
                            "matches no address (networks are separated by spaces)",
                            user.name, net)


def _install_password_verifier(users):
    """Hashed passwords when nutapp.passwords is available, with a warning
    for every user whose password is still stored in plaintext."""
    try:
        from nutapp import passwords
    except ImportError:
        return
    users.verify = passwords.verify_password
    for u in users.users.values():
        if u.password is None:
            continue
        if passwords.is_plaintext(u.password):
            log.warning("user [%s]: password stored in plaintext; "
                        "`nutapp passwd` prints a hashed line to paste", u.name)
        elif users.dummy == "x" * 8:
            # Unknown user names then cost a hash computation too.
            users.dummy = passwords.hash_password(os.urandom(12).hex())


def _check_secrets(conf, statepath):
    """Refuse to start with secrets others can read or change (as root, before
    the privilege drop, so the check sees every file)."""
    daemon.check_secret_file(paths.conffile("upsd.users"), "users file")
    if conf.certident and conf.certident[1]:
        daemon.check_secret_file(paths.conffile("upsd.conf"),
                                 "upsd.conf (it holds the CERTIDENT password)")
    if conf.certfile:
        daemon.check_secret_file(conf.certfile, "CERTFILE (certificate and private key)")
    daemon.check_state_dir(statepath)


def _raise_fd_limit(wanted):
    """Enough file descriptors for MAXCONN clients (the soft limit is often 1024)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.warning("can't raise the open files limit to %d (MAXCONN)", target)


def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def build_parser(prog):
    p = argparse.ArgumentParser(prog=prog, description="NUT network server (nutapp)")
    p.add_argument("-c", dest="command", choices=["reload", "stop"],
                   help="send a command to the running upsd")
    p.add_argument("-D", dest="debug", action="count", default=0,
                   help="debug: more logging, stay in the foreground")
    p.add_argument("-F", dest="foreground", action="store_true", help="stay in the foreground")
    p.add_argument("-B", dest="background", action="store_true", help="go to the background")
    p.add_argument("-r", dest="chroot", help="chroot to this directory")
    p.add_argument("-u", dest="user", help="run as this user")
    p.add_argument("-q", dest="quiet", action="count", default=0, help="log less")
    p.add_argument("-V", dest="version", action="store_true", help="print the version")
    return p


def main(argv=None, prog="upsd"):
    args = build_parser(prog).parse_args(argv)
    if args.version:
        print("Network UPS Tools upsd %s (nutapp %s)" % (NUT_COMPAT_VERSION, __version__))
        return 0
    foreground = (args.foreground or args.debug > 0) and not args.background
    daemon.setup_logging("upsd", foreground=True, debug=args.debug)
    runas = daemon.RunAs(args.user) if args.user else None
    if args.chroot:
        daemon.enter_chroot(args.chroot, preload=CHROOT_PRELOAD)
    try:
        conf = UpsdConf.parse(_read(paths.conffile("upsd.conf")), paths.conffile("upsd.conf"),
                              warn=log.warning)
    except FileNotFoundError:
        log.warning("%s not found, using defaults", paths.conffile("upsd.conf"))
        conf = UpsdConf()
    except (ConfigError, OSError) as e:
        sys.stderr.write("upsd: %s\n" % e)
        return 1
    statepath = paths.statepath(conf.statepath)
    pidfile = os.path.join(statepath, "upsd.pid")
    if args.command:
        return daemon.signal_running(pidfile, args.command)

    _raise_fd_limit(conf.maxconn + 64)
    server = Server(conf, statepath)
    try:
        _check_secrets(conf, statepath)
        server.bind()
        if runas:
            daemon.drop_privileges(runas)
        from nutapp.server import tls

        server.tls_context = tls.server_context(conf, log)
        server.core.tls_available = server.tls_context is not None
    except SystemExit as e:
        sys.stderr.write("upsd: %s\n" % e)
        return 1
    if not foreground:
        daemon.setup_logging("upsd", foreground=False, debug=args.debug)
        daemon.daemonize()

    def ready():
        try:
            daemon.write_pidfile(pidfile)
        except OSError as e:
            log.warning("can't write pid file %s: %s", pidfile, e.strerror)

    try:
        server.run(on_ready=ready)
    except SystemExit as e:
        if isinstance(e.code, str):
            sys.stderr.write("upsd: %s\n" % e.code)
            return 1
        raise
    finally:
        try:
            os.unlink(pidfile)
        except OSError:
            pass
    return 0
