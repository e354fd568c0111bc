"""The whole path a person takes: a settings file on the boot folder is
provisioned, nutapp's upsd serves with the made certificate, and Debian's
NSS-built upsmon, trusting only the certificate the appliance left on the
boot folder, logs in with CERTVERIFY 1 and FORCESSL 1."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from nutstack import APC_DUMP, have_debian_nut
from ports import free_port

from provision_helpers import Box

pytestmark = [
    pytest.mark.skipif(not have_debian_nut(), reason="Debian's NUT is not installed"),
    pytest.mark.skipif(not shutil.which("certutil"), reason="libnss3-tools not installed"),
]


@pytest.fixture
def world():
    # Not pytest's tmp_path: upsd may drop to the nut user, which cannot
    # traverse pytest's 0700 folders.
    top = tempfile.mkdtemp(prefix="nutapp-prov-tls-", dir="/tmp")
    os.chmod(top, 0o755)
    procs = []
    yield top, procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)  # upsmon forks: stop its whole group
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    shutil.rmtree(top, ignore_errors=True)


def _wait(predicate, what, logs, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail("%s\n%s" % (what, "\n".join(
        "== %s\n%s" % (name, open(name, errors="replace").read()[-3000:]) for name in logs)))


class Appliance:
    """A boot folder provisioned from `settings`, then its driver and upsd
    serving on a free loopback port (the appliance's default is LISTEN *
    3493), and Debian's upsmon as the client."""

    def __init__(self, world, settings, ups):
        self.top, self.procs = world
        self.box = Box(self.top)
        self.port = free_port()
        self.logs = []
        dev = os.path.join(self.top, "ups.dev")
        shutil.copy(APC_DUMP, dev)
        os.chmod(dev, 0o644)
        self.box.put("nutapp.conf", settings % {"dev": dev})
        self.box.put("upsd.conf", "LISTEN 127.0.0.1 %d\n" % self.port)
        assert self.box.run() == 0, self.box.errors()
        state = os.path.join(self.box.data, "nut", "state")
        self.env = dict(os.environ, NUT_CONFPATH=os.path.abspath(self.box.etc),
                        NUT_STATEPATH=state)
        self.spawn("driver", [sys.executable, "-m", "nutapp", "dummy-ups", "-a", ups, "-F"])
        self.spawn("upsd", [sys.executable, "-m", "nutapp", "upsd", "-F"])

    def spawn(self, name, argv, env=None):
        path = os.path.join(self.top, name + ".log")
        self.logs.append(path)
        with open(path, "wb") as log:
            p = subprocess.Popen(argv, env=env or self.env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def debian_upsmon(self, conf):
        mon = os.path.join(self.top, "mon")
        os.makedirs(mon, exist_ok=True)
        with open(os.path.join(mon, "upsmon.conf"), "w") as f:
            f.write(conf + "POLLFREQ 1\nMINSUPPLIES 1\nSHUTDOWNCMD /bin/false\n"
                    "RUN_AS_USER root\n")
        os.chmod(os.path.join(mon, "upsmon.conf"), 0o600)
        with open(os.path.join(mon, "nut.conf"), "w") as f:
            f.write("MODE=netclient\n")
        env = dict(os.environ, NUT_CONFPATH=mon, NUT_STATEPATH=mon)
        # upsmon keeps its PID file in /run/nut whatever NUT_STATEPATH says:
        # give it a private /run/nut so it cannot meet another test's upsmon.
        self.spawn("upsmon", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                              "mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut && "
                              "exec /lib/nut/upsmon -F -D"], env=env)

    def upsd_log(self):
        return open(os.path.join(self.top, "upsd.log"), errors="replace").read()

    def wait_log(self, text, what):
        _wait(lambda: text in self.upsd_log(), what, self.logs)


def test_debian_upsmon_verifies_the_provisioned_certificate(world):
    app = Appliance(world, "[system]\nhostname = pi-nut\n\n"
                           "[ups dummy]\ndriver = dummy-ups\nport = %(dev)s\n\n"
                           "[user watcher]\nrole = secondary\npassword = watchpass1\n",
                    "dummy")
    box, top = app.box, app.top
    assert "watchpass1" not in box.boot_text("nutapp.conf")
    assert "DISABLE_WEAK_SSL" not in box.etc_text("upsd.conf")

    # The client side knows only SERVER-CERTIFICATE.pem from the boot folder.
    db = os.path.join(top, "nssdb")
    os.makedirs(db)
    subprocess.run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", "sql:" + db, "-n", "pi-nut", "-t", "TC,,", "-a",
                    "-i", os.path.join(box.boot, "SERVER-CERTIFICATE.pem")], check=True)
    app.debian_upsmon("MONITOR dummy@127.0.0.1:%d 1 watcher watchpass1 secondary\n"
                      "CERTPATH %s\nCERTVERIFY 1\nFORCESSL 1\n"
                      'CERTHOST "127.0.0.1" "pi-nut.local" 1 1\n' % (app.port, db))

    app.wait_log("logged into UPS [dummy] (TLS)", "upsmon did not log in over TLS")
    assert "User watcher@127.0.0.1 logged into UPS [dummy] (TLS)" in app.upsd_log()


@pytest.mark.parametrize("ups, user, password", [
    ("ups", "monuser", "secret"),  # Synology
    ("qnapups", "admin", "123456"),  # QNAP
])
def test_a_nas_box_logs_in_with_its_fixed_password(world, ups, user, password):
    """A NAS box as a network UPS client runs upsmon with a line the person
    cannot change, e.g. Synology's MONITOR ups@<server> 1 monuser secret
    slave. The appliance takes such a short password for a secondary user
    (only for a login-only role) and that upsmon logs in; it does not verify
    certificates, so it logs in in plaintext."""
    app = Appliance(world, "[ups %s]\ndriver = dummy-ups\nport = %%(dev)s\n\n"
                           "[user %s]\nrole = secondary\npassword = %s\n"
                    % (ups, user, password), ups)
    assert password not in app.box.boot_text("nutapp.conf").split("[user")[1]
    app.debian_upsmon("MONITOR %s@127.0.0.1:%d 1 %s %s slave\n"
                      % (ups, app.port, user, password))
    app.wait_log("User %s@127.0.0.1 logged into UPS [%s]" % (user, ups),
                 "the NAS-style upsmon did not log in")
