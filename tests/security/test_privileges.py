"""Privileges for real (CI runs as root): upsd and a driver chrooted and
running as `nut` with no supplementary groups and no capabilities, read from
/proc; listeners bound before the drop, secrets read after it; start-up
refusing secrets and state directories others could read or change."""

import os
import pwd
import shutil
import socket
import subprocess
import sys

import pytest

from certs import issue, make_ca, write_certfile
from stack import DEV, IS_ROOT, UPS, Line, nut_gid, secure

pytestmark = pytest.mark.skipif(not (IS_ROOT and nut_gid() is not None),
                                reason="needs root and a nut user (CI)")

USERS = "[mon]\n\tpassword = monpw\n\tupsmon secondary\n"


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def assert_unprivileged(pid, jail=None, gid=None):
    nut = pwd.getpwnam("nut")
    st = proc_status(pid)
    assert st["Uid"] == [str(nut.pw_uid)] * 4
    assert st["Gid"] == [str(nut.pw_gid if gid is None else gid)] * 4
    assert st["Groups"] == []
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap][0], 16) == 0, cap
    assert st["NoNewPrivs"] == ["1"]
    if jail is not None:
        assert os.readlink("/proc/%d/root" % pid) == os.path.realpath(jail)


def free_privileged_port():
    for port in range(700, 1000, 7):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port below 1024")


class Jail:
    """NUT's chroot layout: the jail holds the same absolute paths as the
    host (confpath, state path), plus /dev/null and /etc/localtime."""

    def __init__(self, base, port, users=USERS, extra_conf="", driver_group=None):
        self.root = os.path.join(base, "jail")
        self.conf = os.path.join(base, "etc")  # the host path, mirrored inside
        self.state = os.path.join(base, "state")
        for d in (self.conf, self.jailed(self.conf)):
            os.makedirs(d)
            secure(d, 0o750)
        for d in (self.state, self.jailed(self.state)):
            os.makedirs(d)
            secure(d, 0o770)
        for d in ("dev", "etc"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        subprocess.run(["cp", "-a", "/dev/null", os.path.join(self.root, "dev")], check=True)
        if os.path.exists("/etc/localtime"):
            shutil.copy("/etc/localtime", os.path.join(self.root, "etc", "localtime"))
        group = "group = %s\n" % driver_group if driver_group else ""
        ups_conf = ("chroot = %s\nuser = nut\n%s[%s]\n\tdriver = dummy-ups\n"
                    "\tport = ups.dev\n" % (self.root, group, UPS))
        files = {"ups.conf": ups_conf, "ups.dev": DEV, "upsd.users": users,
                 "upsd.conf": "LISTEN 127.0.0.1 %d\n%s" % (port, extra_conf)}
        for name, text in files.items():
            for d in (self.conf, self.jailed(self.conf)):
                path = os.path.join(d, name)
                with open(path, "w") as f:
                    f.write(text)
                secure(path, 0o640)
        self.procs = []

    def jailed(self, path):
        return self.root + path

    def env(self):
        return dict(os.environ, NUT_CONFPATH=self.conf, NUT_STATEPATH=self.state)

    def spawn(self, argv, log):
        with open(log, "ab") as f:
            p = subprocess.Popen([sys.executable, "-m", "nutapp"] + argv, env=self.env(),
                                 stdout=f, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def jail(base):
    made = []

    def make(**kw):
        j = Jail(base, **kw)
        made.append(j)
        return j

    yield make
    for j in made:
        j.stop()


def wait_serving(port, proc, log):
    import time

    for _ in range(150):
        if proc.poll() is not None:
            break
        try:
            with Line("127.0.0.1", port, timeout=2) as c:
                if c.ask("GET VAR %s ups.status" % UPS).startswith("VAR"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    with open(log) as f:
        raise AssertionError("not serving:\n" + f.read())


def test_upsd_and_driver_chrooted_unprivileged(jail, base):
    port = free_privileged_port()  # binding below 1024 proves the bind came before the drop
    j = jail(port=port)
    log = os.path.join(base, "daemons.log")
    driver = j.spawn(["dummy-ups", "-a", UPS, "-F"], log)  # user and chroot from ups.conf
    upsd = j.spawn(["upsd", "-F", "-u", "nut", "-r", j.root], log)
    wait_serving(port, upsd, log)
    assert_unprivileged(upsd.pid, jail=j.root)
    assert_unprivileged(driver.pid, jail=j.root)
    with Line("127.0.0.1", port) as c:  # and the chrooted server works: a login
        c.login("mon", "monpw")
        assert c.ask("LOGIN %s" % UPS) == "OK"


def test_driver_group_from_ups_conf(jail, base):
    group = next((g for g in ("dialout", "users", "daemon") if _gid(g) is not None), None)
    if group is None:
        pytest.skip("no spare group to run the driver with")
    port = free_privileged_port()
    j = jail(port=port, driver_group=group)
    os.chmod(j.jailed(j.conf), 0o755)  # the driver is not in group nut now;
    os.chmod(os.path.join(j.jailed(j.conf), "ups.dev"), 0o644)  # ups.dev is no secret
    log = os.path.join(base, "daemons.log")
    driver = j.spawn(["dummy-ups", "-a", UPS, "-F"], log)
    upsd = j.spawn(["upsd", "-F", "-u", "nut", "-r", j.root], log)
    wait_serving(port, upsd, log)
    assert_unprivileged(driver.pid, jail=j.root, gid=_gid(group))


def _gid(name):
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def test_users_file_is_read_after_the_drop(jail, base):
    port = free_privileged_port()
    j = jail(port=port)
    users = os.path.join(j.jailed(j.conf), "upsd.users")
    os.chown(users, 0, 0)
    os.chmod(users, 0o600)  # root could read it; nut cannot
    r = subprocess.run([sys.executable, "-m", "nutapp", "upsd", "-F", "-u", "nut", "-r",
                        j.root], env=j.env(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "upsd.users" in r.stderr and "ermission denied" in r.stderr


def test_key_is_read_after_the_drop(jail, base):
    port = free_privileged_port()
    j = jail(port=port, extra_conf="CERTFILE /tls/upsd.pem\n")
    os.makedirs(os.path.join(j.root, "tls"))
    pem = write_certfile(os.path.join(j.root, "tls", "upsd.pem"), issue(make_ca(), "ups"))
    os.chown(pem, 0, 0)
    os.chmod(pem, 0o600)
    r = subprocess.run([sys.executable, "-m", "nutapp", "upsd", "-F", "-u", "nut", "-r",
                        j.root], env=j.env(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "CERTFILE /tls/upsd.pem: permission denied" in r.stderr
    assert "chown root:nut /tls/upsd.pem" in r.stderr


# -- refusing insecure secrets -----------------------------------------------------

def _start_fails(stack):
    rc, out = stack.run_upsd_to_exit()
    assert rc != 0, out
    return [ln for ln in out.splitlines() if ln.startswith("upsd: ")][-1]


@pytest.mark.parametrize("mode,fix", [(0o644, "chmod 0640"), (0o660, "chmod 0640"),
                                      (0o604, "chmod 0640")])
def test_users_file_open_to_others_is_refused(stacks, mode, fix):
    s = stacks(users=USERS)
    path = os.path.join(s.etc, "upsd.users")
    os.chmod(path, mode)
    line = _start_fails(s)
    assert path in line and "%04o" % mode in line and "%s %s" % (fix, path) in line


def test_users_file_owned_by_nut_is_refused(stacks):
    s = stacks(users=USERS)
    path = os.path.join(s.etc, "upsd.users")
    os.chown(path, pwd.getpwnam("nut").pw_uid, nut_gid())
    line = _start_fails(s)
    assert "owned by nut" in line and "chown root:nut %s" % path in line


def test_wide_state_directory_is_refused(stacks):
    s = stacks(users=USERS)
    os.chmod(s.state, 0o775)
    line = _start_fails(s)
    assert s.state in line and "0775" in line and "chmod 0770 %s" % s.state in line


def test_certident_password_in_readable_upsd_conf_is_refused(stacks):
    s = stacks(users=USERS)
    pem = write_certfile(os.path.join(s.etc, "upsd.pem"), issue(make_ca(), "ups"), "pw")
    path = s.put("upsd.conf", 'LISTEN 127.0.0.1 %d\nCERTFILE %s\nCERTIDENT "ups" "pw"\n'
                 % (s.port, pem), mode=0o644)
    line = _start_fails(s)
    assert "CERTIDENT password" in line and "chmod 0640 %s" % path in line


def test_secure_layout_starts(stacks):
    s = stacks(users=USERS).start()
    assert_unprivileged(s.upsd.pid)
