"""Running NUT programs for a test: a configuration directory, nutapp's
or Debian's daemons on it, and Debian's upsc / upscmd to read them.

Processes are started with subprocess and stopped by their pid at the
end; every wait has a deadline after which the test fails with the
programs' logs.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ports import free_port

NUT_LIB = "/lib/nut"
UPSC = shutil.which("upsc")
UPSCMD = shutil.which("upscmd")

needs_nut_clients = pytest.mark.skipif(
    UPSC is None or UPSCMD is None,
    reason="Debian's nut-client (upsc, upscmd) is not installed")

USERS = """\
[admin]
  password = s3cret
  instcmds = all
  actions = SET
"""


class Stack:
    """A NUT configuration directory and the processes started on it
    (stopped again by pid at the end), with Debian's clients to read it."""

    def __init__(self, ups_conf, ups="myups"):
        self.ups = ups
        # World-traversable, unlike pytest's tmp_path: a driver started as
        # root drops to the nut user before it opens the port.
        self.top = tempfile.mkdtemp(prefix="nutapp-qx-")
        os.chmod(self.top, 0o755)
        self.conf = os.path.join(self.top, "etc")
        self.state = os.path.join(self.top, "run")
        os.mkdir(self.conf)
        os.mkdir(self.state, 0o770)
        # The user a driver started as root runs as, for devices it opens.
        self.owner = None
        if os.getuid() == 0:
            nut = pwd.getpwnam("nut")
            self.owner = (nut.pw_uid, nut.pw_gid)
            os.chown(self.state, 0, nut.pw_gid)
        self.sim = None
        self.port = free_port()
        self.write("ups.conf", ups_conf(self))
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
        name = "%s-%d.log" % (os.path.basename(argv[0]), len(self.procs))
        log = open(os.path.join(self.top, name), "wb")
        p = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((p, log))
        return p

    python = sys.executable

    def nutapp(self, *args):
        return self.start(self.python, "-m", "nutapp", *args)

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
        if self.sim is not None and self.sim._master is not None:
            self.sim.unplug()
        shutil.rmtree(self.top, ignore_errors=True)

    def logs(self):
        out = []
        for p, log in self.procs:
            log.flush()
            with open(log.name, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            out.append("--- %s\n%s" % (" ".join(p.args), text))
        return "\n".join(out)

    # -- clients -------------------------------------------------------------
    def upsc(self, var=None):
        argv = [UPSC, "%s@127.0.0.1:%d" % (self.ups, self.port)] + ([var] if var else [])
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return _answer(r)

    def upscmd(self, cmd, value=None):
        argv = [UPSCMD, "-u", "admin", "-p", "s3cret",
                "%s@127.0.0.1:%d" % (self.ups, self.port), cmd]
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

    def snapshot(self, needed="ups.status"):
        """upsc's full list as a dict, once it includes `needed` and two
        readings in a row agree (a driver may still be filling it in)."""
        previous = {}

        def settled():
            text = self.upsc()
            values = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
            ready = needed in values and values.get("ups.status") not in (None, "WAIT")
            same = ready and values == previous
            previous.clear()
            previous.update(values)
            return values if same else None

        return self.wait_for("a settled set of variables", settled)


def _answer(result):
    """What a client said, without the noise of Debian's clients ("Init SSL
    without certificate database"); upscmd says OK on stderr."""
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(x for x in lines if not x.startswith("Init SSL")).strip()
