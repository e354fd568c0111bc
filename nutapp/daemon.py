"""What every nutapp daemon shares: logging, pid files, privilege drop.

Logs are one line per event an operator cares about: to stderr in the
foreground, to syslog in the background (the syslog socket is opened before
any chroot, so it keeps working inside the jail).
"""

import errno
import grp
import logging
import os
import pwd
import signal
import sys

log = logging.getLogger("nutapp")


class _SyslogHandler(logging.Handler):
    def __init__(self, ident):
        logging.Handler.__init__(self)
        import syslog

        self._syslog = syslog
        syslog.openlog(ident, syslog.LOG_PID | syslog.LOG_NDELAY, syslog.LOG_DAEMON)

    def emit(self, record):
        prio = {
            logging.DEBUG: self._syslog.LOG_DEBUG,
            logging.INFO: self._syslog.LOG_INFO,
            logging.WARNING: self._syslog.LOG_WARNING,
            logging.ERROR: self._syslog.LOG_ERR,
        }.get(record.levelno, self._syslog.LOG_CRIT)
        try:
            self._syslog.syslog(prio, self.format(record))
        except Exception:
            pass


def setup_logging(ident, foreground, debug=0):
    root = logging.getLogger("nutapp")
    root.handlers[:] = []
    if foreground:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(ident + ": %(message)s"))
    else:
        h = _SyslogHandler(ident)
        h.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(h)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    return root


class RunAs:
    """A resolved run-as user: looked up before chroot, applied after."""

    def __init__(self, user, group=None):
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise SystemExit("user %r not found (create it, or pick another with -u)" % user)
        self.name = user
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        if group:
            try:
                self.gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise SystemExit("group %r not found" % group)


def enter_chroot(path):
    """chroot into `path` (needs root); cwd becomes its /."""
    try:
        os.chroot(path)
    except OSError as e:
        raise SystemExit("can't chroot to %s: %s" % (path, e.strerror))
    os.chdir("/")


def drop_privileges(runas):
    """Become `runas` for good: no supplementary groups, no capabilities.

    setgroups/setgid/setuid from root to an ordinary uid clears the
    capability sets; the check at the end makes a failure loud.
    """
    if os.getuid() != 0:
        if os.getuid() != runas.uid:
            log.warning("not root: can't switch to user %s, staying uid %d",
                        runas.name, os.getuid())
        return
    if runas.uid == 0:
        log.warning("running as root (-u root): no privilege separation")
        return
    os.setgroups([])
    os.setgid(runas.gid)
    os.setuid(runas.uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise SystemExit("privilege drop failed: could regain root")


def daemonize():
    """Detach from the terminal (double fork), stdio to /dev/null."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)


def write_pidfile(path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(tmp, path)


def signal_running(pidfile, command):
    """`-c reload|stop` as NUT: signal the process named in `pidfile`."""
    sig = {"reload": signal.SIGHUP, "stop": signal.SIGTERM}.get(command)
    if sig is None:
        sys.stderr.write("unknown command %r (use reload or stop)\n" % command)
        return 2
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError) as e:
        sys.stderr.write("can't read pid file %s: %s\n" % (pidfile, e))
        return 1
    try:
        os.kill(pid, sig)
    except OSError as e:
        if e.errno == errno.ESRCH:
            sys.stderr.write("no process %d (stale pid file %s)\n" % (pid, pidfile))
        else:
            sys.stderr.write("can't signal %d: %s\n" % (pid, e.strerror))
        return 1
    return 0
