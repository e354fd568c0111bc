"""`nutapp upsmon`: watch UPSes over the network and shut this host down in time.

    upsmon [-D] [-F|-B] [-p] [-u user] [-r chroot] [-f upsmon.conf]
    upsmon -c fsd|stop|reload [-P pid]
    upsmon -K

Start-up, as NUT's upsmon: read upsmon.conf (refused if other users can
read it: it holds passwords), remove our POWERDOWNFLAG left from an
earlier shutdown, detach unless -F/-D, then split into a root parent that
only powers the host down when asked (nutapp.upsmon.privileged) and a
child that drops to RUN_AS_USER (or -u) and monitors (nutapp.upsmon.monitor).
With -r (nutapp's addition; NUT's upsd has it, its upsmon not) that child
also chroots first, as upsd does: the process that talks to the network
then sees only the jail, which must hold upsmon.conf and the CERTPATH and
CERTFILE paths at their usual places, and NOTIFYCMD if one is set.
Signals to the child: SIGTERM stops, SIGHUP reloads, SIGUSR1 forces a
shutdown (what `-c stop|reload|fsd` sends, to the pid in upsmon.pid).
"""

import getopt
import logging
import os
import signal
import stat
import sys

from nutapp import daemon, paths
from nutapp.core.errors import ConfigError
from nutapp.core.upsmon import parse_config

from . import privileged

log = logging.getLogger("nutapp.upsmon")

DEFAULT_USER = "nut"
# What the monitoring child may import after its chroot, imported before.
CHROOT_PRELOAD = ("nutapp.clients.tls", "nutapp.clients.client", "nutapp.upsmon.monitor",
                  "nutapp.upsmon.notify", "subprocess")
SIGNALS = {"fsd": signal.SIGUSR1, "stop": signal.SIGTERM, "reload": signal.SIGHUP}


def usage(prog):
    return ("usage: %s [-D] [-F|-B] [-p] [-u user] [-r chroot] [-f upsmon.conf]\n"
            "       %s -c fsd|stop|reload [-P pid]\n"
            "       %s -K\n"
            "  -c <cmd>  send a command to the running upsmon: fsd (shut down now, with\n"
            "            FSD on every UPS this host is primary for), stop, reload\n"
            "  -P <pid>  signal this pid instead of the one in upsmon.pid\n"
            "  -D        more logging (and stay in the foreground)\n"
            "  -F / -B   stay in the foreground / go to the background\n"
            "  -K        exit 0 if POWERDOWNFLAG is set (the UPS should cut power), else 1\n"
            "  -p        one privileged process (no privilege separation)\n"
            "  -u <user> run the monitoring process as <user> (default: RUN_AS_USER or nut)\n"
            "  -r <dir>  chroot the monitoring process to <dir> before it drops privileges\n"
            "  -f <file> configuration file (default: $NUT_CONFPATH/upsmon.conf)\n"
            % (prog, prog, prog))


def load(path):
    with open(path) as f:
        text = f.read()
    return parse_config(text, path)


def check_mode(path):
    """upsmon.conf holds passwords: refuse it when other users can read or write it."""
    st = os.stat(path)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o006:
        return ("%s is %s by every user on this host (mode %04o) and it holds the upsd "
                "passwords; fix it with: chmod 0640 %s (and chgrp nut %s)"
                % (path, "readable" if mode & 0o004 else "writable", mode, path, path))
    return None


def main(argv=None, prog="upsmon"):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts, rest = getopt.getopt(argv, "c:P:DFBhKpu:r:f:V")
    except getopt.GetoptError as e:
        sys.stderr.write("%s: %s\n%s" % (prog, e, usage(prog)))
        return 2
    if rest:
        sys.stderr.write("%s: unexpected argument %r\n%s" % (prog, rest[0], usage(prog)))
        return 2
    command = pid = user = chroot = None
    debug, foreground, check_flag, split = 0, None, False, True
    path = paths.conffile("upsmon.conf")
    for o, a in opts:
        if o == "-c":
            command = a
        elif o == "-P":
            pid = a
        elif o == "-D":
            debug += 1
        elif o == "-F":
            foreground = True
        elif o == "-B":
            foreground = False
        elif o == "-K":
            check_flag = True
        elif o == "-p":
            split = False
        elif o == "-u":
            user = a
        elif o == "-r":
            chroot = a
        elif o == "-f":
            path = a
        elif o == "-h":
            sys.stdout.write(usage(prog))
            return 0
        elif o == "-V":
            sys.stdout.write("Network UPS Tools upsmon 2.8.0 (nutapp)\n")
            return 0
    if foreground is None:
        foreground = debug > 0
    pidfile = os.path.join(paths.statepath(), "upsmon.pid")

    if command is not None:
        return send_command(prog, command, pidfile, pid)
    if chroot is not None and not (split and os.getuid() == 0):
        sys.stderr.write("%s: -r needs root and privilege separation (no -p): the "
                         "monitoring process chroots before it drops to its user\n" % prog)
        return 2
    if chroot is not None and not os.path.isdir(chroot):
        sys.stderr.write("%s: -r %s: no such directory\n" % (prog, chroot))
        return 1

    daemon.setup_logging("upsmon", foreground=True, debug=debug)
    try:
        conf = load(path)
    except OSError as e:
        sys.stderr.write("%s: can't read %s: %s\n" % (prog, path, e.strerror or e))
        return 1
    except ConfigError as e:
        sys.stderr.write("%s: %s\n" % (prog, e))
        return 1

    if check_flag:
        return check_pdflag(conf)

    problem = check_mode(path)
    if problem:
        sys.stderr.write("%s: refusing to start: %s\n" % (prog, problem))
        return 1
    for w in conf.warnings:
        log.warning("%s", w)
    _startup_warnings(conf, path)
    privileged.clear_pdflag(conf)
    return start(conf, path, prog, foreground, debug, split, user or conf.run_as_user
                 or DEFAULT_USER, pidfile, chroot)


def _startup_warnings(conf, path):
    if not conf.shutdowncmd and conf.minsupplies > 0:
        log.warning("no SHUTDOWNCMD in %s: a power failure will not shut this host down",
                    path)
    if conf.shutdownexit != 0:
        log.warning("SHUTDOWNEXIT %s in %s is not supported: upsmon exits once it has "
                    "started the shutdown, as with SHUTDOWNEXIT yes", conf.shutdownexit, path)
    if not conf.powerdownflag and conf.primaries():
        log.warning("no POWERDOWNFLAG in %s: after a shutdown nothing tells the UPS to cut "
                    "the power, so this host may stay halted when the mains comes back", path)


def send_command(prog, command, pidfile, pid):
    sig = SIGNALS.get(command)
    if sig is None:
        sys.stderr.write("%s: unknown command %r (use fsd, stop or reload)\n" % (prog, command))
        return 2
    try:
        if pid is None:
            with open(pidfile) as f:
                pid = f.read().strip()
        target = int(pid)
    except (OSError, ValueError) as e:
        sys.stderr.write("%s: can't find the running upsmon (%s: %s); is it running? "
                         "or give -P <pid>\n" % (prog, pidfile, getattr(e, "strerror", e) or e))
        return 1
    try:
        os.kill(target, sig)
    except OSError as e:
        sys.stderr.write("%s: can't signal upsmon (pid %d): %s\n" % (prog, target, e.strerror))
        return 1
    return 0


def check_pdflag(conf):
    status = privileged.pdflag_status(conf.powerdownflag)
    if not conf.powerdownflag:
        sys.stderr.write("POWERDOWNFLAG is not set in %s\n" % conf.filename)
        return 1
    if status == 1:
        sys.stdout.write("Power down flag is set (%s)\n" % conf.powerdownflag)
        return 0
    if status == -1:
        sys.stderr.write("%s does not hold upsmon's marker: not a power-down flag\n"
                         % conf.powerdownflag)
        return 1
    sys.stdout.write("Power down flag is not set (%s)\n" % conf.powerdownflag)
    return 1


def start(conf, path, prog, foreground, debug, split, user, pidfile, chroot=None):
    runas = None
    if split:
        try:
            runas = daemon.RunAs(user)
        except SystemExit as e:
            sys.stderr.write("%s: %s\n" % (prog, e))
            return 1
    if not foreground:
        daemon.setup_logging("upsmon", foreground=False, debug=debug)
        daemon.daemonize()

    if not split:
        log.info("running as one privileged process (-p)")
        powercut, indicators, runner = build(conf, path, with_powercut=True)
        if runner is None:
            return 1
        runner.privileged = privileged.Direct(conf, powercut)
        _write_pid(pidfile)
        rc = _run(runner, pidfile)
        if powercut is not None and powercut.fired:
            privileged.hold(powercut)
        return rc

    rfd, wfd = os.pipe()
    parent_pid = os.getpid()
    child = os.fork()
    if child:
        os.close(wfd)
        powercut = None
        try:
            if conf.gpio_powercut is not None:
                from .gpio import PowerCut

                powercut = PowerCut(conf.gpio_powercut)
        except Exception as e:
            log.error("GPIO_POWERCUT on pin %s can't be used: %s; the power will not be cut "
                      "after a shutdown", conf.gpio_powercut.pin, e)
        return privileged.run_parent(rfd, conf, child, powercut, pidfile)

    os.close(rfd)
    _write_pid(pidfile)
    _, indicators, runner = build(conf, path, with_powercut=False)
    if runner is None:
        os._exit(1)
    try:
        if chroot is not None:
            daemon.enter_chroot(chroot, preload=CHROOT_PRELOAD)
            log.info("monitoring process chrooted to %s", chroot)
        daemon.drop_privileges(runas)
    except SystemExit as e:
        log.error("%s", e)
        os._exit(1)
    runner.privileged = privileged.PipeToParent(wfd, parent_pid)
    rc = _run(runner, pidfile)
    logging.shutdown()
    os._exit(rc)


def build(conf, path, with_powercut, pin_factory=None, timeout=10.0):
    """The GPIO devices and the Runner: (powercut, indicators, runner).

    Called while still root so the GPIO lines can be opened; under
    privilege separation the parent owns the power-cut line instead
    (`with_powercut` False). Returns (None, None, None) after logging why
    a configured GPIO line can't be used.
    """
    from .monitor import Runner

    powercut = indicators = None
    try:
        if conf.gpio_powercut is not None and with_powercut:
            from .gpio import PowerCut

            powercut = PowerCut(conf.gpio_powercut, pin_factory=pin_factory)
        if conf.gpio_leds:
            from .gpio import Indicators

            indicators = Indicators(conf.gpio_leds, pin_factory=pin_factory)
    except Exception as e:
        log.error("can't open the GPIO lines of %s: %s", path, e)
        return None, None, None
    runner = Runner(conf, None, indicators=indicators, reload=lambda: load(path),
                    timeout=timeout)
    line = conf.gpio_shutdown_button
    if line is not None:
        try:
            from .gpio import ShutdownButton

            runner.button = ShutdownButton(
                line, lambda: runner.request_fsd("the shutdown input (GPIO %s)" % line.pin),
                pin_factory=pin_factory)
        except Exception as e:
            log.error("can't open GPIO_SHUTDOWN_BUTTON pin %s: %s", line.pin, e)
            return None, None, None
    return powercut, indicators, runner


def _write_pid(pidfile):
    try:
        daemon.write_pidfile(pidfile)
    except OSError as e:
        log.warning("can't write pid file %s: %s (upsmon -c will need -P)", pidfile,
                    e.strerror or e)


def _run(runner, pidfile):
    signal.signal(signal.SIGTERM, lambda *a: runner.request_stop())
    signal.signal(signal.SIGINT, lambda *a: runner.request_stop())
    signal.signal(signal.SIGHUP, lambda *a: runner.request_reload())
    signal.signal(signal.SIGUSR1, lambda *a: runner.request_fsd())
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        return runner.run()
    finally:
        try:
            os.unlink(pidfile)
        except OSError:
            pass
