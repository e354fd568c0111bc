"""Test helper: run a NUT stack (ours or Debian's C one) in a temp directory.

A `Stack` writes ups.conf / upsd.conf / upsd.users into its own config
directory, starts drivers and upsd on a free loopback port, waits until the
UPSes serve data, and stops everything afterwards. Either side can be ours
(`python -m nutapp ...`) or Debian's (/lib/nut/upsd, /lib/nut/dummy-ups), so
tests can pair any server with any driver and any client.
"""

import grp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ports import free_port

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DDL = SHARED / "data" / "nut-ddl"
LOCAL_DDL = REPO / "tests" / "data" / "nut-ddl"
APC_DUMP = LOCAL_DDL / "APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev"
NUT_LIB = Path("/lib/nut")
PY = [sys.executable, "-m", "nutapp"]

DEFAULT_USERS = """
[admin]
    password = adminpass
    actions = SET FSD
    instcmds = ALL

[monprimary]
    password = primarypass
    upsmon primary

[monsecondary]
    password = secondarypass
    upsmon secondary

[viewer]
    password = viewerpass
"""


def have_debian_nut():
    return (NUT_LIB / "upsd").exists() and (NUT_LIB / "dummy-ups").exists() and \
        shutil.which("upsc") is not None


def nut_gid():
    try:
        return grp.getgrnam("nut").gr_gid
    except KeyError:
        return None


class Stack:
    def __init__(self, base, ups=None, upsd_conf="", users=DEFAULT_USERS, port=None,
                 listen=None):
        """`ups`: {name: (dev file path, extra ups.conf lines)}.

        The files live in a fresh directory under /tmp (pytest's own tmp dirs
        are 0700 root, which the unprivileged `nut` user cannot traverse);
        `base` only names it.
        """
        self.base = Path(tempfile.mkdtemp(prefix="nutapp-%s-" % Path(base).name[:40],
                                          dir="/tmp"))
        self.conf = self.base / "etc"
        self.state = self.base / "state"
        self.conf.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.procs = []
        self.logs = []
        self.ups = ups if ups is not None else {"dummy": (APC_DUMP, "")}
        sections = []
        for name, (dev, extra) in self.ups.items():
            target = self.conf / ("%s%s" % (name, Path(dev).suffix or ".dev"))
            shutil.copy(dev, target)
            sections.append("[%s]\n\tdriver = dummy-ups\n\tport = %s\n%s\n"
                            % (name, target.name, extra))
        self.write("ups.conf", "\n".join(sections))
        listen = listen if listen is not None else "LISTEN 127.0.0.1 %d\n" % self.port
        self.write("upsd.conf", listen + upsd_conf)
        self.write("upsd.users", users)
        self.fix_modes()
        self.env = dict(os.environ, NUT_CONFPATH=str(self.conf), NUT_STATEPATH=str(self.state))

    def write(self, name, text):
        (self.conf / name).write_text(text)

    def fix_modes(self):
        """root:nut 0640 files, 0770 state: what NUT's chapter asks for."""
        gid = nut_gid()
        if os.getuid() != 0 or gid is None:
            return
        os.chown(self.base, 0, gid)
        os.chmod(self.base, 0o750)
        os.chown(self.conf, 0, gid)
        os.chmod(self.conf, 0o750)
        for p in self.conf.iterdir():
            os.chown(p, 0, gid)
            os.chmod(p, 0o640)
        os.chown(self.state, 0, gid)
        os.chmod(self.state, 0o770)

    # -- processes ----------------------------------------------------------
    def spawn(self, argv, name):
        log = open(self.base / ("%s.log" % name), "wb")
        self.logs.append(log)
        p = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def start_drivers(self, kind="ours"):
        for name in self.ups:
            if kind == "ours":
                self.spawn(PY + ["dummy-ups", "-a", name, "-F"], "driver-" + name)
            else:
                argv = [str(NUT_LIB / "dummy-ups"), "-a", name, "-F"]
                if os.getuid() == 0:
                    argv += ["-u", "nut"]
                self.spawn(argv, "cdriver-" + name)

    def start_upsd(self, kind="ours", extra=()):
        if kind == "ours":
            argv = PY + ["upsd", "-F"] + list(extra)
        else:
            argv = [str(NUT_LIB / "upsd"), "-F"] + list(extra)
            if os.getuid() == 0 and "-u" not in extra:
                argv += ["-u", "nut"]
        return self.spawn(argv, "upsd-" + kind)

    def start(self, server="ours", drivers="ours", extra=()):
        self.start_drivers(drivers)
        self.start_upsd(server, extra)
        self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        """Wait until every UPS serves fresh data (its dump is complete)."""
        from nutapp.clients.client import NutClient
        from nutapp.core.errors import NutError

        end = time.monotonic() + timeout
        pending = set(self.ups)
        last = None
        while pending and time.monotonic() < end:
            try:
                with NutClient("127.0.0.1", self.port, timeout=2) as c:
                    for name in list(pending):
                        # Answered only once the driver's dump is complete and fresh.
                        c.get_var(name, "driver.name")
                        pending.discard(name)
            except NutError as e:
                last = e
                time.sleep(0.1)
        if pending:
            raise AssertionError("UPS %s not ready: %s\n%s" % (pending, last, self.log_text()))

    def wait_listening(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nothing listens on %d\n%s" % (self.port, self.log_text()))

    def log_text(self):
        out = []
        for f in sorted(self.base.glob("*.log")):
            out.append("== %s\n%s" % (f.name, f.read_text(errors="replace")[-3000:]))
        return "\n".join(out)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.logs:
            f.close()
        self.procs = []
        self.logs = []
        if os.environ.get("NUTAPP_KEEP_TEST_DIRS") is None:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- clients ------------------------------------------------------------
    def target(self, ups=None):
        ups = ups or next(iter(self.ups))
        return "%s@127.0.0.1:%d" % (ups, self.port)

    def debian(self, tool, *args, input=None, check=True):
        """Run one of Debian's client tools; returns CompletedProcess."""
        r = subprocess.run([tool] + list(args), env=self.env, capture_output=True,
                           text=True, timeout=30, input=input)
        if check and r.returncode != 0:
            raise AssertionError("%s %s failed (%d): %s" % (tool, args, r.returncode, r.stderr))
        return r

    def ours(self, tool, *args, check=True, input=None):
        r = subprocess.run(PY + [tool] + list(args), env=self.env, capture_output=True,
                           text=True, timeout=30, input=input)
        if check and r.returncode != 0:
            raise AssertionError("nutapp %s %s failed (%d): %s"
                                 % (tool, args, r.returncode, r.stderr))
        return r

    def client(self, **kw):
        from nutapp.clients.client import NutClient

        return NutClient("127.0.0.1", self.port, **kw).connect()


def strip_noise(text):
    """Debian's 2.8.0 clients print an NSS notice on stderr; drop it."""
    return "\n".join(l for l in text.splitlines() if "Init SSL without certificate" not in l)
