"""`nutapp upsdrvctl`: start, stop and supervise the drivers of ups.conf.

    upsdrvctl [-F] [-D] [-u user] [-r chroot] start [ups]
    upsdrvctl stop [ups]
    upsdrvctl shutdown [ups]

`start` runs each driver as its own process (so drivers and upsd keep
separate privileges) and stays as their supervisor: a driver that dies is
started again after a growing delay. Without -F the supervisor goes to the
background. `stop` signals the supervisor and the drivers through their pid
files; `shutdown` asks each UPS to cut its power (the driver's -k).
"""

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from nutapp import daemon, paths
from nutapp.core.config import UpsConf
from nutapp.core.errors import ConfigError
from nutapp.drivers import DRIVERS

log = logging.getLogger("nutapp.upsdrvctl")

RESTART_MIN = 1.0
RESTART_MAX = 30.0


def _load():
    path = paths.conffile("ups.conf")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return UpsConf.parse(text, path, warn=log.warning, known_drivers=DRIVERS)
    except (ConfigError, OSError) as e:
        raise SystemExit(str(e))


def _selected(conf, name):
    if name is None:
        return list(conf.ups.values())
    s = conf.get(name)
    if s is None:
        raise SystemExit("UPS [%s] is not in ups.conf" % name)
    return [s]


def _driver_argv(section, args, extra=()):
    argv = [sys.executable, "-m", "nutapp", section.driver, "-a", section.name, "-F"]
    if args.user:
        argv += ["-u", args.user]
    if args.chroot:
        argv += ["-r", args.chroot]
    argv += ["-D"] * args.debug
    return argv + list(extra)


class Supervisor:
    def __init__(self, sections, args):
        self.args = args
        self.children = {}  # name -> [Popen, section, delay, next_start]
        for s in sections:
            self.children[s.name] = [None, s, RESTART_MIN, 0.0]
        self.running = True

    def start_one(self, entry):
        # Own session: a Ctrl-C on the terminal reaches only the supervisor.
        proc = subprocess.Popen(_driver_argv(entry[1], self.args), start_new_session=True)
        entry[0] = proc
        entry[3] = time.monotonic()
        log.info("started %s for UPS [%s] (pid %d)", entry[1].driver, entry[1].name, proc.pid)

    def run(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        for entry in self.children.values():
            self.start_one(entry)
        while self.running:
            time.sleep(0.5)
            now = time.monotonic()
            for entry in self.children.values():
                proc = entry[0]
                if proc is not None and proc.poll() is not None:
                    uptime = now - entry[3]
                    if uptime > 60:
                        entry[2] = RESTART_MIN
                    log.warning("driver for UPS [%s] exited with status %s; restarting in %gs",
                                entry[1].name, proc.returncode, entry[2])
                    entry[0] = None
                    entry[3] = now + entry[2]
                    entry[2] = min(entry[2] * 2, RESTART_MAX)
                elif proc is None and now >= entry[3]:
                    self.start_one(entry)
        for entry in self.children.values():
            if entry[0] is not None and entry[0].poll() is None:
                entry[0].terminate()
        for entry in self.children.values():
            if entry[0] is not None:
                try:
                    entry[0].wait(10)
                except subprocess.TimeoutExpired:
                    entry[0].kill()
        log.info("drivers stopped")
        return 0

    def _stop(self, signum, frame):
        self.running = False


def main(argv=None, prog="upsdrvctl"):
    p = argparse.ArgumentParser(prog=prog, description="Start and stop UPS drivers")
    p.add_argument("-F", dest="foreground", action="store_true",
                   help="stay in the foreground, supervising the drivers")
    p.add_argument("-D", dest="debug", action="count", default=0)
    p.add_argument("-u", dest="user", help="drivers run as this user")
    p.add_argument("-r", dest="chroot", help="drivers chroot here")
    p.add_argument("command", choices=["start", "stop", "shutdown"])
    p.add_argument("ups", nargs="?")
    args = p.parse_args(argv)
    daemon.setup_logging("upsdrvctl", foreground=True, debug=args.debug)
    try:
        conf = _load()
        sections = _selected(conf, args.ups)
    except SystemExit as e:
        sys.stderr.write("upsdrvctl: %s\n" % e)
        return 1
    statepath = paths.statepath(conf.globals.get("statepath"))
    pidfile = os.path.join(statepath, "upsdrvctl.pid")

    if args.command == "start":
        if not sections:
            sys.stderr.write("upsdrvctl: no UPS defined in ups.conf\n")
            return 1
        if not args.foreground:
            daemon.setup_logging("upsdrvctl", foreground=False, debug=args.debug)
            daemon.daemonize()
        try:
            daemon.write_pidfile(pidfile)
        except OSError as e:
            log.warning("can't write %s: %s", pidfile, e.strerror)
        try:
            return Supervisor(sections, args).run()
        finally:
            try:
                os.unlink(pidfile)
            except OSError:
                pass

    if args.command == "stop":
        rc = 0
        if args.ups is None and os.path.exists(pidfile):
            rc = daemon.signal_running(pidfile, "stop")
        for s in sections:
            drv_pid = paths.driver_socket(statepath, s.driver, s.name) + ".pid"
            if os.path.exists(drv_pid):
                rc |= daemon.signal_running(drv_pid, "stop")
        return rc

    rc = 0
    for s in sections:
        log.info("shutting down UPS [%s]", s.name)
        res = subprocess.call(_driver_argv(s, args, ["-k"]))
        if res != 0:
            log.error("shutdown of UPS [%s] failed", s.name)
            rc = 1
    return rc
