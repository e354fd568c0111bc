"""The privileged half of upsmon: power-down only, on request.

As in NUT, upsmon splits in two at start-up. The root parent keeps only
what it needs to power the host down (POWERDOWNFLAG, SHUTDOWNCMD and the
GPIO power-cut line, read once at start) and blocks on a pipe; the child
drops to RUN_AS_USER and does all network I/O. When the child decides to
shut down it writes one byte (1) to the pipe; the parent then writes the
flag file, runs SHUTDOWNCMD and drives the power-cut line. End of file on
the pipe means the child exited: the parent exits too.

`Direct` does the same in one process (`upsmon -p`, and the tests).
"""

import logging
import os
import select
import signal
import subprocess

from nutapp.core.upsmon import SDMAGIC

log = logging.getLogger("nutapp.upsmon")

SHUTDOWN_REQUEST = b"\x01"


def power_down(conf, powercut=None):
    """Write POWERDOWNFLAG, run SHUTDOWNCMD, then drive the power-cut line."""
    if conf.powerdownflag:
        try:
            with open(conf.powerdownflag, "w") as f:
                f.write(SDMAGIC)
            log.critical("wrote POWERDOWNFLAG %s", conf.powerdownflag)
        except OSError as e:
            log.error("can't write POWERDOWNFLAG %s: %s; the UPS will not be told to cut "
                      "power at the end of the shutdown", conf.powerdownflag, e.strerror or e)
    if conf.shutdowncmd:
        log.critical("running SHUTDOWNCMD: %s", conf.shutdowncmd)
        rc = subprocess.call(["/bin/sh", "-c", conf.shutdowncmd], stdin=subprocess.DEVNULL)
        if rc != 0:
            log.error("SHUTDOWNCMD %s failed (exit status %d); shut this host down by hand",
                      conf.shutdowncmd, rc)
    else:
        log.error("no SHUTDOWNCMD in upsmon.conf: nothing shuts this host down; "
                  "set SHUTDOWNCMD \"/sbin/shutdown -h +0\"")
    if powercut is not None:
        powercut.fire()


def pdflag_status(path):
    """1: our flag is there; 0: no flag (or none configured); -1: a foreign file."""
    if not path:
        return 0
    try:
        with open(path) as f:
            text = f.read(len(SDMAGIC) + 64)
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.error("POWERDOWNFLAG %s exists but can't be read: %s", path, e.strerror or e)
        return -1
    return 1 if text.startswith(SDMAGIC) else -1


def clear_pdflag(conf):
    """At start-up: remove a flag left by an earlier shutdown (only ours)."""
    status = pdflag_status(conf.powerdownflag)
    if status == -1:
        log.error("POWERDOWNFLAG %s is not a file upsmon wrote (it lacks %r); leaving it "
                  "alone and not using a power-down flag", conf.powerdownflag, SDMAGIC)
        conf.powerdownflag = None
    elif status == 1:
        os.unlink(conf.powerdownflag)


class Direct:
    """Power down from this very process (upsmon -p, tests)."""

    def __init__(self, conf, powercut=None):
        self.conf = conf
        self.powercut = powercut
        self.done = False

    def alive(self):
        return True

    def shutdown(self):
        if not self.done:
            self.done = True
            power_down(self.conf, self.powercut)
        return True


class PipeToParent:
    """The child's end: ask the root parent to power down."""

    def __init__(self, fd, parent_pid):
        self.fd = fd
        self.parent_pid = parent_pid

    def alive(self):
        return os.getppid() == self.parent_pid

    def shutdown(self):
        try:
            os.write(self.fd, SHUTDOWN_REQUEST)
            return True
        except OSError as e:
            log.critical("can't reach the privileged process: %s", e.strerror or e)
            return False


def run_parent(fd, conf, child_pid, powercut=None, pidfile=None):
    """The root parent's whole life: wait for the child's request or its exit.

    `pidfile` (the child's) is removed when the child is gone: the child,
    no longer root, may not be allowed to.
    """
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # the child handles these
    while True:
        try:
            data = os.read(fd, 1)
            break
        except InterruptedError:
            continue
    if not data:
        _, status = os.waitpid(child_pid, 0)
        _unlink(pidfile)
        return os.waitstatus_to_exitcode(status)
    if data != SHUTDOWN_REQUEST:
        log.error("privileged process: unexpected request %r on the pipe; exiting", data)
        return 1
    power_down(conf, powercut)
    _unlink(pidfile)
    hold(powercut)
    return 0


def hold(powercut):
    """A power-cut level must stay asserted until the system halts: never
    return (exiting would release the line)."""
    if powercut is None or powercut.line.pattern is not None:
        return
    while True:
        select.select([], [], [], 3600)


def _unlink(path):
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass
