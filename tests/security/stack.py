"""A real nutapp stack (dummy-ups driver + upsd) for the security tests.

Files are laid out as the security chapter asks: configuration root:nut
0640 in a 0750 directory, the state path root:nut 0770. When the tests run
as root (CI) both daemons drop to the `nut` user, as on the appliance.
"""

import grp
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from ports import free_port

UPS = "ups"
DEV = """\
ups.status: OL
ups.mfr: Test
ups.model: Security
battery.charge: 100
ups.delay.shutdown: 20
#CMD:beeper.disable
#CMD:test.battery.start
"""

IS_ROOT = os.getuid() == 0


def nut_gid():
    try:
        return grp.getgrnam("nut").gr_gid
    except KeyError:
        return None


def make_base(prefix="nutsec-"):
    """A temporary directory the `nut` user can traverse."""
    base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(base, 0o755)
    return base


def secure(path, mode):
    os.chmod(path, mode)
    gid = nut_gid()
    if IS_ROOT and gid is not None:
        os.chown(path, 0, gid)


class Stack:
    """Configuration under `base`, upsd on `listen` [(host, port)]."""

    def __init__(self, base, port=None, users="", upsd_conf="", listen=None, netns=None):
        self.base = base
        self.port = port or free_port()
        self.listen = listen if listen is not None else [("127.0.0.1", self.port)]
        self.etc = os.path.join(base, "etc")
        self.state = os.path.join(base, "state")
        self.users = users
        self.upsd_conf = upsd_conf
        self.netns = netns
        self.procs = []
        self.upsd = None
        self.upsd_log = os.path.join(base, "upsd.log")
        self.driver_log = os.path.join(base, "driver.log")
        self.write()

    # -- files ----------------------------------------------------------------
    def write(self):
        for d in (self.etc, self.state):
            os.makedirs(d, exist_ok=True)
        secure(self.etc, 0o750)
        secure(self.state, 0o770)
        listen = "".join("LISTEN %s %d\n" % hp for hp in self.listen)
        self.put("ups.conf", "[%s]\n\tdriver = dummy-ups\n\tport = ups.dev\n"
                             "\tdesc = \"security test\"\n" % UPS)
        self.put("ups.dev", DEV)
        self.put("upsd.conf", listen + self.upsd_conf)
        self.put("upsd.users", self.users)

    def put(self, name, text, mode=0o640):
        path = os.path.join(self.etc, name)
        with open(path, "w") as f:
            f.write(text)
        secure(path, mode)
        return path

    def env(self):
        return dict(os.environ, NUT_CONFPATH=self.etc, NUT_STATEPATH=self.state,
                    PYTHONDONTWRITEBYTECODE="1")

    def _cmd(self, argv):
        cmd = [sys.executable, "-m", "nutapp"] + argv
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return cmd

    # -- processes ------------------------------------------------------------
    def start_driver(self, extra=()):
        user = ["-u", "nut"] if IS_ROOT else []
        with open(self.driver_log, "ab") as log:
            p = subprocess.Popen(self._cmd(["dummy-ups", "-a", UPS, "-F"] + user + list(extra)),
                                 env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start_upsd(self, extra=(), wait=True):
        user = ["-u", "nut"] if IS_ROOT else []
        with open(self.upsd_log, "ab") as log:
            p = subprocess.Popen(self._cmd(["upsd", "-F"] + user + list(extra)),
                                 env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        self.upsd = p
        if wait:
            self.wait_ready()
        return p

    def start(self, upsd_extra=()):
        self.start_driver()
        self.start_upsd(upsd_extra)
        return self

    def run_upsd_to_exit(self, extra=(), timeout=20):
        """Start upsd expecting it to refuse: (exit code, output)."""
        user = ["-u", "nut"] if IS_ROOT else []
        r = subprocess.run(self._cmd(["upsd", "-F"] + user + list(extra)), env=self.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def wait_ready(self, host=None, timeout=20.0):
        """Until GET VAR answers with data (driver connected, not stale)."""
        host = host or self.listen[0][0]
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            if self.upsd is not None and self.upsd.poll() is not None:
                raise AssertionError("upsd exited (%s):\n%s" % (self.upsd.returncode,
                                                                self.log()))
            try:
                with Line(host, self.port, timeout=2) as c:
                    last = c.ask("GET VAR %s ups.status" % UPS)
                    if last.startswith("VAR "):
                        return
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError("stack not ready: %s\n%s" % (last, self.log()))

    def log(self):
        try:
            with open(self.upsd_log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


class Line:
    """A raw line client, optionally from a chosen source address."""

    def __init__(self, host, port, src=None, timeout=10.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if src:
            self.sock.bind((src, 0))
        self.sock.connect((host, port))
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("latin-1")

    def ask(self, line):
        self.send(line)
        return self.readline()

    def starttls(self, ctx, server_hostname=None):
        assert self.ask("STARTTLS") == "OK STARTTLS"
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def login(self, user, password):
        """USERNAME + PASSWORD; the replies."""
        return self.ask("USERNAME %s" % user), self.ask("PASSWORD %s" % password)


def insecure_client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def cleanup(base):
    shutil.rmtree(base, ignore_errors=True)
