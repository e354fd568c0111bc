"""`nutapp upsd`: NUT's network server on asyncio.

Start-up follows NUT's order: resolve the run-as user, chroot (-r), read
upsd.conf, bind the listeners, drop privileges, then read ups.conf,
upsd.users and the TLS key as the unprivileged user. Each client is a
`ClientProtocol` driving a `nutapp.core.session.Session`; each UPS's driver
is reached over its Unix socket in the state path, reconnecting as needed.

Memory stays bounded under abuse: lines are capped, a client that does not
read its replies stops being read (and is dropped when idle), connections are
capped globally and per source address.
"""

import argparse
import asyncio
import ipaddress
import logging
import os
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

MAX_LINE = 4096  # bytes of one request line; NUT's 32 words x 512 is never needed
MAX_WRITE_BUFFER = 256 * 1024  # unread replies before a client is dropped
RECV_BUFFER = 64 * 1024  # one receive buffer, shared by all clients
DRIVER_RETRY = 1.0
# Imported only when needed, so imported before a chroot hides them.
CHROOT_PRELOAD = ("nutapp.server.tls", "nutapp.clients.tls", "nutapp.passwords",
                  "cryptography.x509", "cryptography.x509.oid")


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


class ClientProtocol(asyncio.BufferedProtocol):
    def __init__(self, server):
        self.server = server
        self.transport = None
        self.session = None
        self.buf = b""
        self.discarding = False
        self.paused = False
        self.last_activity = time.monotonic()
        self.addr = "?"
        self.source = "?"
        self.upgrading = False
        self.early = b""  # requests decrypted before start_tls() returned
        self.line_started = None  # when the unfinished request line began

    # -- connection ---------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        addr = peer[0] if peer else "unix"
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
        self.addr = addr
        srv = self.server
        self.source = source = _source_key(addr)
        if len(srv.clients) >= srv.conf.maxconn:
            srv.ratelog("conn", "refused %s: MAXCONN (%d) reached" % (addr, srv.conf.maxconn),
                        addr)
            transport.abort()
            return
        if srv.per_source.get(source, 0) >= srv.conf.maxconn_per_source:
            srv.ratelog("conn", "refused %s: too many connections from that address" % addr,
                        addr)
            transport.abort()
            return
        srv.per_source[source] = srv.per_source.get(source, 0) + 1
        srv.clients.add(self)
        self.session = Session(srv.core, addr)
        try:
            transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def connection_lost(self, exc):
        srv = self.server
        if self.session is not None:
            self.session.close()
            self.session = None
            srv.clients.discard(self)
            n = srv.per_source.get(self.source, 1) - 1
            if n <= 0:
                srv.per_source.pop(self.source, None)
            else:
                srv.per_source[self.source] = n

    def pause_writing(self):
        # The client does not read: stop reading its requests until it does.
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self):
        self.paused = False
        if not self.upgrading:
            self.transport.resume_reading()

    # -- requests -----------------------------------------------------------
    # Reads land in the server's one receive buffer (get_buffer), and
    # buffer_updated copies out what arrived before anything else runs, so
    # clients never see each other's bytes. The plain Protocol path would
    # allocate 256 KiB per read instead: depending on malloc's state that
    # costs an mmap/mremap/munmap or two brk calls per request.
    def get_buffer(self, sizehint):
        return self.server.recv_view

    def buffer_updated(self, nbytes):
        self.data_received(bytes(self.server.recv_view[:nbytes]))

    def data_received(self, data):
        if self.session is None:
            return
        if self.upgrading:
            # The TLS transport may hand over the client's first requests
            # before start_tls() has returned to us: keep them for then.
            if self.transport is not None and len(self.early) < MAX_LINE:
                self.early += data
            return
        now = self.last_activity = time.monotonic()
        srv = self.server
        srv.core.now = now
        out = []
        session = self.session
        lines = (self.buf + data if self.buf else data).split(b"\n")
        rest = lines.pop()  # what follows the last newline: an unfinished line
        completed = bool(lines)
        for line in lines:
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
        if len(rest) > MAX_LINE:
            if not self.discarding:
                out.append("ERR INVALID-ARGUMENT\n")
                srv.ratelog("conn", "overlong line from %s dropped" % self.addr, self.addr)
            self.discarding = True
            rest = b""
        self.buf = rest
        # A request line must be finished within IDLE_TIMEOUT of its first
        # byte: a client dribbling a byte now and then is not idle, but holds
        # a connection slot for nothing.
        if not self.buf and not self.discarding:
            self.line_started = None
        elif self.line_started is None or completed:
            self.line_started = self.last_activity
        if out:
            self.transport.write("".join(out).encode("latin-1", "replace"))
            if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                srv.ratelog("conn", "dropping %s: it does not read its replies" % self.addr,
                            self.addr)
                self.transport.abort()
                return
        if session.closing:
            self.transport.close()
        elif session.start_tls:
            session.start_tls = False
            self.upgrading = True
            self.transport.pause_reading()
            asyncio.ensure_future(self._upgrade())

    async def _upgrade(self):
        srv = self.server
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(self.transport, self, srv.tls_context,
                                       server_side=True, ssl_handshake_timeout=10)
        except (OSError, asyncio.TimeoutError, Exception) as e:  # noqa: B902
            srv.ratelog("tls", "TLS handshake with %s failed: %s"
                        % (self.addr, _tls_reason(e)), self.addr)
            if self.transport is not None:
                self.transport.abort()
            return
        self.transport = new
        self.upgrading = False
        if self.session is None:
            return
        self.session.tls = True
        ssl_obj = new.get_extra_info("ssl_object")
        if ssl_obj is not None:
            cert = ssl_obj.getpeercert()
            if cert:
                self.session.tls_peer = _subject_cn(cert)
        srv.ratelog("tls-on", "client %s: TLS on (%s%s)" % (
            self.addr, ssl_obj.version() if ssl_obj else "?",
            ", certificate " + self.session.tls_peer if self.session.tls_peer else ""),
            self.addr)
        self.last_activity = time.monotonic()
        early, self.early = self.early, b""
        if early:
            self.data_received(early)
        if not self.paused and self.session is not None and not self.session.closing:
            new.resume_reading()


def _tls_reason(e):
    s = str(e) or e.__class__.__name__
    return s.splitlines()[0][:200]


def _subject_cn(cert):
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return "(no CN)"


class Server:
    def __init__(self, conf, statepath):
        self.conf = conf
        self.statepath = statepath
        self.clients = set()
        self.per_source = {}
        self.recv_view = memoryview(bytearray(RECV_BUFFER))
        self.listen_socks = []
        self.servers = []
        self.driver_tasks = {}
        self.tls_context = None
        self.ratelog = RateLimitedLog()
        self.core = Upsd(conf, Users(), version=NUT_COMPAT_VERSION)
        self.core.make_id = lambda: str(uuid.uuid4()).upper()
        self.core.log = lambda event, msg, source=None: self.ratelog(
            event, msg, source or event)
        self.core.addr_allowed = _addr_allowed
        self.core.source_key = _source_key
        self.stopping = None

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
        self.core.users = users
        for s in self.core.sessions:
            s.user = None  # credentials are checked again against the new file
        added, removed = self.core.set_ups_table(list(upsconf.ups.values()))
        for name in removed:
            task = self.driver_tasks.pop(name.lower(), None)
            if task:
                task.cancel()
            log.info("UPS [%s] removed", name)
        for ups in self.core.ups.values():
            if ups.name.lower() not in self.driver_tasks:
                self.driver_tasks[ups.name.lower()] = asyncio.ensure_future(
                    self._driver_link(ups))
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

    # -- drivers ------------------------------------------------------------
    async def _driver_link(self, ups):
        core = self.core
        warned = False
        while True:
            path = paths.driver_socket(self.statepath, ups.driver, ups.name)
            try:
                reader, writer = await asyncio.open_unix_connection(path, limit=65536)
            except OSError as e:
                if not warned:
                    log.warning("can't connect to UPS [%s] (%s): %s", ups.name, path,
                                e.strerror or e)
                    warned = True
                await asyncio.sleep(DRIVER_RETRY)
                continue
            warned = False

            def send(line, writer=writer):
                if writer.is_closing():
                    return False
                writer.write(line.encode("latin-1", "replace"))
                return True

            core.now = time.monotonic()
            ups.driver_connected(send, core.now)
            log.info("connected to UPS [%s]: %s", ups.name, os.path.basename(path))
            send("DUMPALL\n")
            try:
                while True:
                    try:
                        raw = await reader.readline()
                    except ValueError:  # an overlong line: skip it
                        continue
                    if not raw:
                        break
                    core.now = time.monotonic()
                    core.driver_line(ups, raw.decode("latin-1").rstrip("\n"))
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
                ups.driver_lost()
            log.warning("lost connection to driver of UPS [%s]", ups.name)
            await asyncio.sleep(DRIVER_RETRY)

    # -- main loop ----------------------------------------------------------
    async def run(self, on_ready=None):
        loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        for s in self.listen_socks:
            self.servers.append(await loop.create_server(
                lambda: ClientProtocol(self), sock=s, backlog=128))
        self.load(first=True)
        self.load_descriptions()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        loop.add_signal_handler(signal.SIGHUP, self.load)
        if on_ready:
            on_ready()
        ticker = asyncio.ensure_future(self._tick())
        await self.stopping
        ticker.cancel()
        for srv in self.servers:
            srv.close()
        for c in list(self.clients):
            if c.transport:
                c.transport.close()
        for t in self.driver_tasks.values():
            t.cancel()
        log.info("signal received, exiting")

    def _stop(self):
        if not self.stopping.done():
            self.stopping.set_result(True)

    async def _tick(self):
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self.core.now = now
            self.core.tick()
            limit = now - self.conf.idle_timeout
            for c in list(self.clients):
                if c.transport is None:
                    continue
                if c.last_activity < limit:
                    c.transport.abort()
                elif c.line_started is not None and c.line_started < limit:
                    self.ratelog("conn", "dropping %s: a request line took longer than "
                                 "IDLE_TIMEOUT" % c.addr, c.addr)
                    c.transport.abort()


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
        asyncio.run(server.run(on_ready=ready))
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
