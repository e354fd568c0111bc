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


# Modules the daemons may import lazily, which a minimal jail (NUT's: config,
# state path, /dev/null, /etc/localtime) cannot provide after chroot.
CHROOT_PRELOAD = ("ctypes", "encodings.idna", "encodings.ascii", "encodings.latin_1",
                  "ipaddress", "ssl", "hashlib", "hmac", "uuid", "syslog", "resource")


def enter_chroot(path, preload=()):
    """chroot into `path` (needs root); cwd becomes its /.

    Python and its standard library stay outside the jail, so every module
    the process will need is imported first (`CHROOT_PRELOAD` plus the
    caller's `preload`; missing optional ones are skipped).
    """
    import importlib

    for name in CHROOT_PRELOAD + tuple(preload):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    try:
        os.chroot(path)
    except OSError as e:
        raise SystemExit("can't chroot to %s: %s" % (path, e.strerror))
    os.chdir("/")


def drop_privileges(runas):
    """Become `runas` for good: no supplementary groups, no capabilities.

    The capability bounding set is emptied and no_new_privs set first, so
    that not even an executed set-uid program could bring root back; then
    setgroups/setgid/setuid from root to an ordinary uid clears the other
    capability sets. The checks at the end make a failure loud.
    """
    if os.getuid() != 0:
        if os.getuid() != runas.uid:
            log.warning("not root: can't switch to user %s, staying uid %d",
                        runas.name, os.getuid())
        return
    if runas.uid == 0:
        log.warning("running as root (-u root): no privilege separation")
        return
    _drop_bounding_set()
    os.setgroups([])
    os.setgid(runas.gid)
    os.setuid(runas.uid)
    for regain in (lambda: os.setuid(0), lambda: os.setgid(0)):
        try:
            regain()
        except PermissionError:
            continue
        raise SystemExit("privilege drop failed: could regain root")
    if runas.uid != 0 and _cap_mask("CapEff") != 0:
        raise SystemExit("privilege drop failed: capabilities left (CapEff)")


_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38


def _drop_bounding_set():
    """Linux only; a no-op where prctl is unavailable."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    for cap in range(_LAST_CAP + 1):
        prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _read_last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 63  # unknown: try them all, prctl refuses the ones that do not exist


_LAST_CAP = _read_last_cap()  # read at import, before any chroot hides /proc


def _cap_mask(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


class InsecureFile(SystemExit):
    pass


def check_secret_file(path, what="file"):
    """Refuse a secret (upsd.users, upsmon.conf, a TLS key) that others can
    read, or that anyone but root (or the user running us) could change.

    Raises InsecureFile with one line naming the file, the mode or owner
    found and the command that fixes it.
    """
    try:
        st = os.stat(path)
    except OSError:
        return  # reading it later reports the real problem
    mode = st.st_mode & 0o7777
    fix_mode = "chmod 0640 %s" % path
    if mode & 0o007:
        raise InsecureFile("%s %s is open to other users (mode %04o): run `%s`"
                           % (what, path, mode, fix_mode))
    if mode & 0o020:
        raise InsecureFile("%s %s is writable by its group (mode %04o): run `%s`"
                           % (what, path, mode, fix_mode))
    if st.st_uid not in (0, os.geteuid()):
        raise InsecureFile("%s %s is owned by %s, who could change it: run `chown root:%s %s`"
                           % (what, path, _user_name(st.st_uid), _group_name(st.st_gid),
                              path))


def check_state_dir(path):
    """The state path holds the driver sockets: at most 0770."""
    try:
        st = os.stat(path)
    except OSError:
        return
    mode = st.st_mode & 0o7777
    if mode & 0o007:
        raise InsecureFile("state directory %s is open to other users (mode %04o): "
                           "run `chmod 0770 %s`" % (path, mode, path))


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return "nut"


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
