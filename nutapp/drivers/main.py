"""One driver process: `nutapp <driver> -a <ups>` (NUT's driver command line).

The framework reads the UPS's section of ups.conf, opens the driver socket
`<statepath>/<driver>-<ups>` (mode 0660) for upsd, chroots and drops
privileges as ups.conf says, then runs the driver: open the device, poll it,
broadcast every change to the connected servers, and answer PING, DUMPALL,
INSTCMD and SET. A device that stops answering makes the data stale; the
framework closes it and opens it again with a growing back-off, so an
unplugged cable or a re-enumerated USB device recovers without a restart.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from nutapp import __version__, NUT_COMPAT_VERSION, paths, daemon
from nutapp.core.config import UpsConf
from nutapp.core.dstate import DriverState, parse_server_request
from nutapp.core.errors import ConfigError
from nutapp.core.parseconf import split_line, ParseError
from nutapp.drivers import DRIVERS, load_driver_class
from nutapp.drivers.base import CommError, DriverError, STAT_FAILED

log = logging.getLogger("nutapp.driver")

# ups.conf keys the framework handles itself (not passed on as parameters).
FRAMEWORK_KEYS = ("driver", "port", "desc", "sdorder", "sdcommands", "user", "group",
                  "chroot", "maxstartdelay", "synchronous", "pollinterval",
                  "maxretry", "retrydelay", "ignorelb", "debug_min", "nolock")
RETRY_MIN = 1.0
RETRY_MAX = 8.0


class DriverProcess:
    def __init__(self, driver_cls, upsname, options, sockpath):
        self.upsname = upsname
        self.options = options
        self.sockpath = sockpath
        self.dstate = DriverState()
        self.driver = driver_cls(upsname, options, self.dstate)
        self.conns = set()
        self.server = None
        self.stopping = None
        self.device_ok = False

    # -- variables the framework publishes, as NUT's main.c does ----------------
    def publish_driver_info(self):
        d, o = self.dstate, self.options
        d.setinfo("device.type", "ups")
        d.setinfo("driver.name", self.driver.name)
        d.setinfo("driver.version", NUT_COMPAT_VERSION)
        d.setinfo("driver.version.internal", self.driver.version)
        d.setinfo("driver.parameter.port", o.get("port", ""))
        d.setinfo("driver.parameter.pollinterval", "%g" % self.driver.poll_interval)
        d.setinfo("driver.parameter.synchronous", o.get("synchronous", "auto"))
        if "ignorelb" in o:
            d.ignorelb = True
            d.setinfo("driver.flag.ignorelb", "enabled")
        for key in sorted(o):
            if key in self.driver.options_help and key not in ("port", "pollinterval"):
                d.setinfo("driver.parameter." + key, o[key])
        for key, value in o.items():
            if key.startswith("default."):
                d.set_default(key[8:], value)
        for key, value in o.items():
            if key.startswith("override."):
                d.set_override(key[9:], value)

    def mirror_device_info(self):
        for src, dst in (("ups.mfr", "device.mfr"), ("ups.model", "device.model"),
                         ("ups.serial", "device.serial")):
            v = self.dstate.getinfo(src)
            if v is not None:
                self.dstate.setinfo(dst, v)

    # -- socket side -------------------------------------------------------------
    def broadcast(self):
        lines = self.dstate.take_pending()
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        for w in list(self.conns):
            if w.is_closing():
                self.conns.discard(w)
                continue
            w.write(data)

    async def serve_conn(self, reader, writer):
        self.conns.add(writer)
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:
                    continue
                if not raw:
                    break
                try:
                    words = split_line(raw.decode("latin-1").rstrip("\n"), 0, 0)
                except ParseError:
                    continue
                req = parse_server_request(words)
                if req is None:
                    log.debug("unknown request from server: %r", raw)
                    continue
                await self.handle_request(req, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.conns.discard(writer)
            writer.close()

    async def handle_request(self, req, writer):
        kind = req[0]
        if kind == "PING":
            writer.write(b"PONG\n")
        elif kind == "DUMPALL":
            self.broadcast()  # flush pending changes first: the dump is complete
            data = "\n".join(self.dstate.dump_lines()) + "\n"
            writer.write(data.encode("utf-8", "replace"))
        elif kind in ("INSTCMD", "SET"):
            _, name, arg, tracking = req
            try:
                if kind == "INSTCMD":
                    log.info("instant command %s%s", name, " " + arg if arg else "")
                    status = await self.driver.instcmd(name, arg)
                else:
                    log.info("set %s to %s", name, arg)
                    status = await self.driver.setvar(name, arg)
            except CommError as e:
                log.warning("%s %s failed: %s", kind, name, e)
                status = STAT_FAILED
            self.broadcast()
            if tracking:
                writer.write(("TRACKING %s %d\n" % (tracking, status)).encode())

    # -- device side -------------------------------------------------------------
    async def open_device(self):
        delay = RETRY_MIN
        while True:
            try:
                await self.driver.open()
                return
            except CommError as e:
                log.warning("can't open %s: %s (retrying in %gs)", self.options.get("port"),
                            e, delay)
            self.dstate.datastale()
            self.broadcast()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def poll_loop(self):
        first = True
        while True:
            await self.open_device()
            if first:
                self.mirror_device_info()
                first = False
            log.info("device ready")
            while True:
                try:
                    await self.driver.update()
                except CommError as e:
                    log.warning("lost contact with the UPS: %s", e)
                    self.dstate.datastale()
                    self.broadcast()
                    try:
                        await self.driver.close()
                    except Exception as e2:  # closing a dead device may fail too
                        log.debug("close failed: %s", e2)
                    break
                self.dstate.dataok()
                self.broadcast()
                await self.driver.wait(self.driver.poll_interval)

    async def run(self, on_ready=None):
        loop = asyncio.get_running_loop()
        self.stopping = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        self.server = await asyncio.start_unix_server(self.serve_conn, sock=self.sock,
                                                      limit=65536)
        self.publish_driver_info()
        if on_ready:
            on_ready()
        poller = asyncio.ensure_future(self.poll_loop())
        done, _ = await asyncio.wait([poller, self.stopping],
                                     return_when=asyncio.FIRST_COMPLETED)
        if poller in done and poller.exception():
            raise poller.exception()
        poller.cancel()
        self.server.close()
        try:
            await self.driver.close()
        except Exception:
            pass
        log.info("signal received, exiting")

    def _stop(self):
        if not self.stopping.done():
            self.stopping.set_result(True)

    def bind(self):
        import socket

        try:
            os.unlink(self.sockpath)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            s.bind(self.sockpath)
        finally:
            os.umask(old)
        os.chmod(self.sockpath, 0o660)
        s.listen(16)
        s.setblocking(False)
        self.sock = s


def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def load_section(upsname, driver_name=None):
    """The ups.conf section for `upsname` (and the globals); exits with one
    line naming the problem when it can't."""
    path = paths.conffile("ups.conf")
    try:
        conf = UpsConf.parse(_read(path), path, warn=log.warning, known_drivers=DRIVERS)
    except (ConfigError, OSError) as e:
        raise SystemExit(str(e))
    section = conf.get(upsname)
    if section is None:
        raise SystemExit("%s: no UPS [%s] (known: %s)"
                         % (path, upsname, ", ".join(conf.ups) or "none"))
    if driver_name and section.driver != driver_name:
        raise SystemExit("UPS [%s] uses driver %s, not %s"
                         % (section.name, section.driver, driver_name))
    options = dict(conf.globals)
    for k in ("chroot", "driverpath", "statepath", "maxstartdelay", "lockfile"):
        options.pop(k, None)
    options.update(section.options)
    for flag in section.flags:
        options[flag] = "1"
    return conf, section, options


def main(argv=None, driver=None, prog=None):
    p = argparse.ArgumentParser(prog=prog or "nutapp %s" % driver,
                                description="NUT driver %s (nutapp)" % driver)
    p.add_argument("-a", dest="upsname", required=True, help="UPS name in ups.conf")
    p.add_argument("-D", dest="debug", action="count", default=0)
    p.add_argument("-F", dest="foreground", action="store_true")
    p.add_argument("-B", dest="background", action="store_true")
    p.add_argument("-u", dest="user", help="run as this user (default: ups.conf user)")
    p.add_argument("-g", dest="group", help="run with this group")
    p.add_argument("-r", dest="chroot", help="chroot to this directory")
    p.add_argument("-x", dest="extra", action="append", default=[], metavar="VAR=VAL",
                   help="set a driver option, overriding ups.conf")
    p.add_argument("-k", dest="kill", action="store_true",
                   help="tell the UPS to cut power (shutdown.return), then exit")
    p.add_argument("-V", dest="version", action="store_true")
    args = p.parse_args(argv)
    if args.version:
        print("Network UPS Tools %s %s (nutapp %s)" % (driver, NUT_COMPAT_VERSION, __version__))
        return 0
    foreground = (args.foreground or args.debug > 0) and not args.background
    daemon.setup_logging("%s-%s" % (driver, args.upsname), foreground=True, debug=args.debug)
    try:
        conf, section, options = load_section(args.upsname, driver)
        for item in args.extra:
            k, _, v = item.partition("=")
            options[k.lower()] = v
        cls = load_driver_class(driver)
    except SystemExit as e:
        sys.stderr.write("%s: %s\n" % (driver, e))
        return 1
    except (ImportError, AttributeError) as e:
        sys.stderr.write("%s: driver not available here: %s\n" % (driver, e))
        return 1
    statepath = paths.statepath(conf.globals.get("statepath"))
    sockpath = paths.driver_socket(statepath, driver, section.name)
    proc = DriverProcess(cls, section.name, options, sockpath)
    if args.kill:
        return _kill_power(proc)
    user = args.user or options.get("user") or (_default_user() if os.getuid() == 0 else None)
    group = args.group or options.get("group")
    chroot = args.chroot or conf.globals.get("chroot")
    try:
        runas = daemon.RunAs(user, group) if user else None
        if chroot:
            # As NUT: the socket is made inside the jail, where a chrooted
            # upsd looks for it (the same state path, seen from the jail).
            daemon.enter_chroot(chroot)
        proc.bind()
        if runas and os.getuid() == 0:
            os.chown(sockpath, runas.uid, runas.gid)
        if runas:
            daemon.drop_privileges(runas)
    except (SystemExit, OSError) as e:
        sys.stderr.write("%s: %s\n" % (driver, e))
        return 1
    if not foreground:
        daemon.setup_logging("%s-%s" % (driver, args.upsname), foreground=False,
                             debug=args.debug)
        daemon.daemonize()
    pidfile = sockpath + ".pid"

    def ready():
        try:
            daemon.write_pidfile(pidfile)
        except OSError as e:
            log.debug("can't write pid file %s: %s", pidfile, e.strerror)

    try:
        asyncio.run(proc.run(on_ready=ready))
    except DriverError as e:
        log.error("%s", e)
        return 1
    finally:
        for path in (sockpath, pidfile):
            try:
                os.unlink(path)
            except OSError:
                pass
    return 0


def _default_user():
    """NUT drivers started as root drop to the `nut` user when it exists."""
    import pwd

    try:
        pwd.getpwnam("nut")
        return "nut"
    except KeyError:
        return None


def _kill_power(proc):
    async def go():
        await proc.driver.open()
        # NUT's order: each of these gives the host ups.delay.shutdown first;
        # an immediate load.off is never used for a shutdown.
        order = ("shutdown.return", "shutdown.reboot", "load.off.delay", "shutdown.stayoff")
        if "stayoff" in proc.options:  # NUT's flag: stay off when power returns
            order = ("shutdown.stayoff",) + order[:3]
        for cmd in order:
            if proc.dstate.state.has_cmd(cmd):
                status = await proc.driver.instcmd(cmd, None)
                log.info("sent %s to the UPS (status %d)", cmd, status)
                return 0 if status == 0 else 1
        log.error("this UPS offers no shutdown command")
        return 1

    try:
        return asyncio.run(go())
    except (CommError, DriverError) as e:
        log.error("can't shut the UPS down: %s", e)
        return 1
