"""Debian's NSS-built NUT 2.8.0 as a TLS peer: NSS databases, its upsd
stack, its upsmon. Used by the interoperability and wire tests."""

import os
import shutil
import signal
import subprocess
import time

from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from stack import DEV, UPS, IS_ROOT, nut_gid, secure

UPSMON = "/lib/nut/upsmon"
UPSD = "/lib/nut/upsd"
DUMMY = "/lib/nut/dummy-ups"


def have_debian_nut():
    return all(os.access(p, os.X_OK) for p in (UPSMON, UPSD, DUMMY)) and bool(
        shutil.which("certutil")) and bool(shutil.which("pk12util"))


def _readable_by_nut(path):
    gid = nut_gid()
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, f) for f in files]:
            if IS_ROOT and gid is not None:
                os.chown(n, 0, gid)
            os.chmod(n, 0o750 if os.path.isdir(n) else 0o640)


def nss_trust_db(path, ca, nickname="nutapp test CA"):
    """An NSS database trusting `ca` (upsmon's CERTPATH)."""
    os.makedirs(path)
    subprocess.run(["certutil", "-N", "-d", "sql:" + path, "--empty-password"], check=True,
                   capture_output=True)
    pem = os.path.join(path, "ca.pem")
    with open(pem, "wb") as f:
        f.write(ca.pem())
    subprocess.run(["certutil", "-A", "-d", "sql:" + path, "-n", nickname, "-t", "TC,,",
                    "-a", "-i", pem], check=True, capture_output=True)
    _readable_by_nut(path)
    return path


def nss_server_db(path, ca, leaf, nickname):
    """An NSS database holding `leaf` and its key under `nickname` (Debian
    upsd's CERTPATH + CERTIDENT)."""
    nss_trust_db(path, ca)
    p12 = os.path.join(path, "server.p12")
    with open(p12, "wb") as f:
        f.write(pkcs12.serialize_key_and_certificates(
            nickname.encode(), leaf.key, leaf.cert, None, BestAvailableEncryption(b"p12")))
    subprocess.run(["pk12util", "-i", p12, "-d", "sql:" + path, "-W", "p12", "-K", ""],
                   check=True, capture_output=True)
    os.unlink(p12)
    _readable_by_nut(path)
    return path


class DebianStack:
    """Debian's dummy-ups + upsd under `base`, upsd.conf given by the caller."""

    def __init__(self, base, port, upsd_conf, users):
        self.base = base
        self.port = port
        self.etc = os.path.join(base, "etc")
        self.state = os.path.join(base, "state")
        for d in (self.etc, self.state):
            os.makedirs(d)
        secure(self.etc, 0o750)
        secure(self.state, 0o770)
        self.put("ups.conf", "[%s]\n\tdriver = dummy-ups\n\tport = ups.dev\n" % UPS)
        self.put("ups.dev", DEV)
        self.put("upsd.conf", "LISTEN 127.0.0.1 %d\n%s" % (port, upsd_conf))
        self.put("upsd.users", users)
        self.put("nut.conf", "MODE=netserver\n")
        self.log_path = os.path.join(base, "debian-upsd.log")
        self.procs = []

    def put(self, name, text):
        path = os.path.join(self.etc, name)
        with open(path, "w") as f:
            f.write(text)
        secure(path, 0o640)

    def env(self):
        return dict(os.environ, NUT_CONFPATH=self.etc, NUT_STATEPATH=self.state)

    def start(self):
        with open(os.path.join(self.base, "debian-driver.log"), "wb") as log:
            self.procs.append(subprocess.Popen([DUMMY, "-a", UPS, "-F"], env=self.env(),
                                               stdout=log, stderr=subprocess.STDOUT))
        with open(self.log_path, "wb") as log:
            self.procs.append(subprocess.Popen(_private_run_nut(self.state) + [UPSD, "-F"],
                                               env=self.env(), stdout=log,
                                               stderr=subprocess.STDOUT))
        return self

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

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


class DebianUpsmon:
    """Debian's upsmon as a secondary, in the foreground, logging to a file."""

    def __init__(self, base, target, user, password, certpath, certhost_name,
                 verify=1, force=1):
        self.base = base
        self.etc = os.path.join(base, "upsmon-etc")
        os.makedirs(self.etc)
        secure(self.etc, 0o750)
        host = target.split("@")[1].split(":")[0]
        conf = ("MONITOR %s 1 %s %s secondary\n"
                "MINSUPPLIES 1\nPOLLFREQ 2\nPOLLFREQALERT 2\nDEADTIME 15\n"
                'SHUTDOWNCMD "/bin/true"\nPOWERDOWNFLAG %s/killpower\n'
                "RUN_AS_USER nut\n"
                "CERTPATH %s\nCERTVERIFY %d\nFORCESSL %d\n"
                'CERTHOST "%s" "%s" %d %d\n'
                % (target, user, password, base, certpath, verify, force, host,
                   certhost_name, verify, force))
        path = os.path.join(self.etc, "upsmon.conf")
        with open(path, "w") as f:
            f.write(conf)
        secure(path, 0o640)
        self.log_path = os.path.join(base, "upsmon.log")
        self.proc = None

    def start(self, state):
        env = dict(os.environ, NUT_CONFPATH=self.etc, NUT_STATEPATH=state,
                   NUT_ALTPIDPATH=state)
        with open(self.log_path, "wb") as log:
            # Its own session: upsmon forks an unprivileged child, and stop()
            # ends both through the process group.
            self.proc = subprocess.Popen(_private_run_nut(state) + [UPSMON, "-D", "-F"],
                                         env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _private_run_nut(piddir):
    """Debian's binaries look for a running instance in the compiled-in
    /run/nut whatever the environment says: give each its own /run/nut (a
    private mount namespace) so tests and other users of this machine do
    not see each other."""
    if not (IS_ROOT and shutil.which("unshare")):
        return []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /run/nut && exec "$@"', piddir]


def wait_for(predicate, what, timeout=40.0, details=None):
    """Poll until predicate() is truthy; the value. Fails naming `what` and
    what `details()` says then (a log, say)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = predicate()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s\n%s" % (what, details() if details else ""))
