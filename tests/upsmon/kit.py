"""Helpers for the upsmon end-to-end tests: configs, recorders, certificates."""

import datetime
import grp
import os
import shutil
import subprocess
import time
from pathlib import Path

from nutapp.core.upsmon import NOTIFY_NAMES
from nutstack import NUT_LIB, PY

# The notification types Debian's upsmon 2.8.0 knows (later NUT added more).
NUT_280_TYPES = ("ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN",
                 "REPLBATT", "NOCOMM", "NOPARENT", "CAL", "NOTCAL", "OFF", "NOTOFF", "BYPASS",
                 "NOTBYPASS")


def nut_gid():
    try:
        return grp.getgrnam("nut").gr_gid
    except KeyError:
        return None


def private_dir(path, mode=0o750):
    """A directory root:nut (when root) that the unprivileged side can enter."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    gid = nut_gid()
    if os.getuid() == 0 and gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, mode)
    return path


def open_dir(path):
    """A directory every process may write to (recorders run as nut)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o1777)
    return path


def recorder(path, record, what):
    """A shell script that appends `what` (shell words) to `record`."""
    path = Path(path)
    path.write_text("#!/bin/sh\necho %s >> '%s'\n" % (what, record))
    path.chmod(0o755)
    return path


def upsmon_conf(monitors, out, name, extra=""):
    """upsmon.conf text whose SHUTDOWNCMD and NOTIFYCMD record into `out`.

    WALL is left out of every notification so tests don't write to terminals.
    """
    notify_types = NUT_280_TYPES if name.startswith("debian") else NOTIFY_NAMES
    out = Path(out)
    shutdown = recorder(out / ("shutdown-%s.sh" % name), out / ("shutdown-%s" % name),
                        '"$(date +%s.%N)"')
    notify = recorder(out / ("notify-%s.sh" % name), out / ("notify-%s" % name),
                      '"$NOTIFYTYPE $UPSNAME"')
    lines = ["MONITOR %s" % m for m in monitors]
    lines += ['SHUTDOWNCMD "%s"' % shutdown, 'NOTIFYCMD "%s"' % notify,
              "POWERDOWNFLAG %s" % (out / ("killpower-%s" % name))]
    lines += ["NOTIFYFLAG %s SYSLOG+EXEC" % t for t in notify_types]
    return "\n".join(lines) + "\n" + extra


def write_conf(directory, text, mode=0o640):
    directory = private_dir(directory)
    path = directory / "upsmon.conf"
    path.write_text(text)
    gid = nut_gid()
    if os.getuid() == 0 and gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, mode)
    return path


def set_status(stack, ups, status, charge=100):
    """Rewrite the dummy driver's .dev file: the driver re-reads it when it changes."""
    dev = next(stack.conf.glob(ups + ".*"))
    dev.write_text("ups.mfr: Test\nups.model: Sim\nbattery.charge: %d\nups.status: %s\n"
                   % (charge, status))


def wait_until(pred, timeout, what, log=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    if pred():
        return
    raise AssertionError("timed out waiting for %s%s" % (what, "\n" + log() if log else ""))


def lines(path):
    path = Path(path)
    return path.read_text().splitlines() if path.exists() else []


class Proc:
    """A upsmon process (ours or Debian's) with its output in a file."""

    def __init__(self, argv, env, logfile):
        self.logfile = Path(logfile)
        self.out = open(self.logfile, "wb")
        self.p = subprocess.Popen(argv, env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                  start_new_session=True)

    def text(self):
        return self.logfile.read_text(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, 15)
            except OSError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, 9)
                self.p.wait()
        self.out.close()


def ours_upsmon(confdir, *args):
    env = dict(os.environ, NUT_CONFPATH=str(confdir), NUT_STATEPATH=str(confdir))
    return Proc(PY + ["upsmon", "-F"] + list(args), env, Path(confdir) / "upsmon.log")


def debian_upsmon(confdir, *args):
    """Debian's upsmon 2.8.0. Its pid file path is compiled in (/run/nut/upsmon.pid)
    and a live pid there makes it refuse to start, so it runs in a private mount
    namespace where /run/nut is a directory of its own."""
    (Path(confdir) / "nut.conf").write_text("MODE=netclient\n")
    run = private_dir(Path(confdir) / "run", 0o770)
    env = dict(os.environ, NUT_CONFPATH=str(confdir), NUT_STATEPATH=str(confdir))
    argv = [str(NUT_LIB / "upsmon"), "-F"] + list(args)
    if os.getuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /run/nut && exec "$@"', str(run)] + argv
    return Proc(argv, env, Path(confdir) / "upsmon.log")


def make_certs(directory, names=("localhost", "127.0.0.1")):
    """A CA and a server certificate for upsd: (ca.pem, server.pem chain+key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upsmon test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = directory / "server.pem"
    server.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    gid = nut_gid()
    for p in (ca_pem, server):
        if os.getuid() == 0 and gid is not None:
            os.chown(p, 0, gid)
        os.chmod(p, 0o640)
    return ca_pem, server

