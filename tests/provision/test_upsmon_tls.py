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

from nutstack import APC_DUMP, free_port, have_debian_nut

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


def test_debian_upsmon_verifies_the_provisioned_certificate(world):
    top, procs = world
    box = Box(top)
    port = free_port()
    dev = os.path.join(top, "ups.dev")
    shutil.copy(APC_DUMP, dev)
    os.chmod(dev, 0o644)
    box.put("nutapp.conf", "[system]\nhostname = pi-nut\n\n"
                           "[ups dummy]\ndriver = dummy-ups\nport = %s\n\n"
                           "[user watcher]\nrole = secondary\npassword = watchpass1\n" % dev)
    # Loopback only, on a free port (the appliance's default is LISTEN * 3493).
    box.put("upsd.conf", "LISTEN 127.0.0.1 %d\n" % port)
    assert box.run() == 0
    assert "watchpass1" not in box.boot_text("nutapp.conf")
    assert "DISABLE_WEAK_SSL" not in box.etc_text("upsd.conf")

    state = os.path.join(box.data, "nut", "state")
    env = dict(os.environ, NUT_CONFPATH=os.path.abspath(box.etc), NUT_STATEPATH=state)
    logs = []

    def spawn(name, argv, env=env):
        path = os.path.join(top, name + ".log")
        logs.append(path)
        log = open(path, "wb")
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        procs.append(p)
        return p

    spawn("driver", [sys.executable, "-m", "nutapp", "dummy-ups", "-a", "dummy", "-F"])
    spawn("upsd", [sys.executable, "-m", "nutapp", "upsd", "-F"])

    # The client side knows only SERVER-CERTIFICATE.pem from the boot folder.
    mon = os.path.join(top, "mon")
    db = os.path.join(mon, "nssdb")
    os.makedirs(db)
    subprocess.run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", "sql:" + db, "-n", "pi-nut", "-t", "TC,,", "-a",
                    "-i", os.path.join(box.boot, "SERVER-CERTIFICATE.pem")], check=True)
    with open(os.path.join(mon, "upsmon.conf"), "w") as f:
        f.write("MONITOR dummy@127.0.0.1:%d 1 watcher watchpass1 secondary\n"
                "CERTPATH %s\nCERTVERIFY 1\nFORCESSL 1\n"
                'CERTHOST "127.0.0.1" "pi-nut.local" 1 1\n'
                "POLLFREQ 1\nMINSUPPLIES 1\nSHUTDOWNCMD /bin/false\nRUN_AS_USER root\n"
                % (port, db))
    os.chmod(os.path.join(mon, "upsmon.conf"), 0o600)
    with open(os.path.join(mon, "nut.conf"), "w") as f:
        f.write("MODE=netclient\n")
    mon_env = dict(os.environ, NUT_CONFPATH=mon, NUT_STATEPATH=mon)
    # upsmon keeps its PID file in /run/nut whatever NUT_STATEPATH says: give
    # it a private /run/nut so it cannot meet another test's upsmon.
    spawn("upsmon", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     "mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut && "
                     "exec /lib/nut/upsmon -F -D"], env=mon_env)

    upsd_log = os.path.join(top, "upsd.log")
    _wait(lambda: "logged into UPS [dummy] (TLS)" in open(upsd_log, errors="replace").read(),
          "upsmon did not log in over TLS", logs)
    assert "User watcher@127.0.0.1 logged into UPS [dummy] (TLS)" in open(
        upsd_log, errors="replace").read()
