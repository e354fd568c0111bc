"""nutdrv_qx end to end: `nutapp nutdrv_qx` on a simulated serial UPS,
served by an upsd and read with Debian's upsc / upscmd.

The same simulated unit is also driven by Debian's own nutdrv_qx 2.8.0,
and both drivers must show NUT clients the same values.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from megatec_sim import MegatecSim

NUT_LIB = "/lib/nut"
UPSC = shutil.which("upsc")
UPSCMD = shutil.which("upscmd")

pytestmark = pytest.mark.skipif(UPSC is None or UPSCMD is None,
                                reason="Debian's nut-client (upsc, upscmd) is not installed")

UPS_CONF = """\
[myups]
  driver = nutdrv_qx
  port = {port}
  pollinterval = 1
  pollfreq = 1
  protocol = megatec
  runtimecal = 480,100,960,50
  chargetime = 28800
  idleload = 5
"""

USERS = """\
[admin]
  password = s3cret
  instcmds = all
  actions = SET
"""

# What only says which program produced the data.
DRIVER_IDENTITY = ("driver.version", "driver.version.internal", "driver.version.data",
                   "driver.version.usb")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Stack:
    """A NUT configuration directory, a simulated UPS, and the processes
    started on them (stopped again by pid at the end)."""

    def __init__(self):
        # World-traversable, unlike pytest's tmp_path: a driver started as
        # root drops to the nut user before it opens the port.
        self.top = tempfile.mkdtemp(prefix="nutapp-qx-")
        os.chmod(self.top, 0o755)
        self.conf = os.path.join(self.top, "etc")
        self.state = os.path.join(self.top, "run")
        os.mkdir(self.conf)
        os.mkdir(self.state, 0o770)
        owner = None
        if os.getuid() == 0:
            nut = pwd.getpwnam("nut")
            owner = (nut.pw_uid, nut.pw_gid)
            os.chown(self.state, 0, nut.pw_gid)
        self.sim = MegatecSim(os.path.join(self.top, "ttyUPS"), owner=owner)
        self.port = free_port()
        self.write("ups.conf", UPS_CONF.format(port=self.sim.link_path))
        self.write("upsd.conf", "LISTEN 127.0.0.1 %d\n" % self.port)
        self.write("upsd.users", USERS)
        self.env = dict(os.environ, NUT_CONFPATH=self.conf, NUT_STATEPATH=self.state)
        self.procs = []

    def write(self, name, text):
        path = os.path.join(self.conf, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o640)

    def start(self, *argv):
        log = open(os.path.join(self.top, "%s-%d.log" % (os.path.basename(argv[0]),
                                                        len(self.procs))), "wb")
        p = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((p, log))
        return p

    def nutapp(self, *args):
        return self.start(sys.executable, "-m", "nutapp", *args)

    def stop(self, proc):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self):
        for p, log in self.procs:
            if p.poll() is None:
                self.stop(p)
            log.close()
        if self.sim._master is not None:
            self.sim.unplug()
        shutil.rmtree(self.top, ignore_errors=True)

    def logs(self):
        out = []
        for p, log in self.procs:
            log.flush()
            with open(log.name, "rb") as f:
                out.append("--- %s\n%s" % (" ".join(p.args), f.read().decode("utf-8", "replace")))
        return "\n".join(out)

    # -- clients -------------------------------------------------------------
    def upsc(self, var=None):
        argv = [UPSC, "myups@127.0.0.1:%d" % self.port] + ([var] if var else [])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return _answer(r)

    def upscmd(self, cmd, value=None):
        argv = [UPSCMD, "-u", "admin", "-p", "s3cret", "myups@127.0.0.1:%d" % self.port, cmd]
        if value is not None:
            argv.append(value)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return _answer(r)

    def wait_for(self, what, check, deadline=40):
        """Poll until check() returns something true; fail with the logs."""
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            last = check()
            if last:
                return last
            time.sleep(0.3)
        pytest.fail("gave up waiting for %s (last: %r)\n%s" % (what, last, self.logs()))

    def snapshot(self):
        def full():
            text = self.upsc()
            values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
            return values if "battery.runtime" in values else None

        return self.wait_for("a full set of variables", full)


def _answer(result):
    """What a client said, without the noise of Debian's clients ("Init SSL
    without certificate database"); upscmd says OK on stderr."""
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(l for l in lines if not l.startswith("Init SSL")).strip()


@pytest.fixture
def stack():
    s = Stack()
    yield s
    s.close()


def status_is(stack, want):
    return lambda: stack.upsc("ups.status") == want


def test_upsc_reads_the_nutapp_driver_through_nutapp_upsd(stack):
    stack.nutapp("nutdrv_qx", "-a", "myups", "-F")
    stack.nutapp("upsd", "-F")
    stack.wait_for("ups.status OL", status_is(stack, "OL"))
    values = stack.snapshot()
    assert values["battery.runtime"] == "9600"
    assert values["device.mfr"] == "TS -222  240711"
    assert values["driver.name"] == "nutdrv_qx"

    # An instant command travels upsd -> driver -> serial line.
    stack.sim.set(received=[])
    assert stack.upscmd("test.battery.start", "240") == "OK"
    stack.wait_for("T04 on the line", lambda: "T04" in stack.sim.commands())

    # The power fails and the battery runs low.
    stack.sim.set(q1="(000.0 128.0 120.0 035 60.0 22.1 29.0 11001001")
    stack.wait_for("ups.status OB LB", status_is(stack, "OB LB"))

    # The cable is pulled: clients see stale data, then the data come back.
    stack.sim.unplug()
    stack.wait_for("stale data", lambda: "stale" in stack.upsc("ups.status").lower())
    stack.sim.plug()
    stack.wait_for("ups.status OB LB after replug", status_is(stack, "OB LB"))


@pytest.mark.skipif(not os.path.exists(os.path.join(NUT_LIB, "nutdrv_qx")),
                    reason="Debian's nut-server drivers are not installed")
def test_same_values_as_debian_nutdrv_qx(stack):
    upsd = [os.path.join(NUT_LIB, "upsd"), "-F", "-u", "root"]

    theirs_drv = stack.start(os.path.join(NUT_LIB, "nutdrv_qx"), "-a", "myups", "-F",
                             "-u", "root")
    theirs_upsd = stack.start(*upsd)
    theirs = stack.snapshot()
    stack.sim.set(received=[])
    assert stack.upscmd("shutdown.return") == "OK"
    stack.wait_for("their shutdown string", lambda: [c for c in stack.sim.commands()
                                                     if c != "Q1"])
    their_sent = [c for c in stack.sim.commands() if c != "Q1"]
    stack.stop(theirs_upsd)
    stack.stop(theirs_drv)

    stack.nutapp("nutdrv_qx", "-a", "myups", "-F")
    stack.start(*upsd)  # Debian's upsd on our driver socket
    ours = stack.snapshot()
    stack.sim.set(received=[])
    assert stack.upscmd("shutdown.return") == "OK"
    stack.wait_for("our shutdown string", lambda: [c for c in stack.sim.commands()
                                                   if c != "Q1"])
    our_sent = [c for c in stack.sim.commands() if c != "Q1"]

    for key in DRIVER_IDENTITY:
        theirs.pop(key, None)
        ours.pop(key, None)
    assert ours == theirs
    assert our_sent == their_sent == ["S.5R0003"]
