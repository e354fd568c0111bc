"""`nutapp upsmon` as a process: start-up checks, -K, -c, privilege separation."""

import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from nutapp.core.upsmon import SDMAGIC
from nutstack import PY, Stack

from .kit import lines, open_dir, ours_upsmon, set_status, upsmon_conf, wait_until, write_conf

FAST = "POLLFREQ 1\nPOLLFREQALERT 1\nDEADTIME 3\nHOSTSYNC 3\nFINALDELAY 0\n"
OL = "ups.mfr: Test\nups.model: Sim\nbattery.charge: 100\nups.status: OL\n"


def run(confdir, *args):
    env = dict(os.environ, NUT_CONFPATH=str(confdir), NUT_STATEPATH=str(confdir))
    return subprocess.run(PY + ["upsmon"] + list(args), env=env, capture_output=True,
                          text=True, timeout=30)


def minimal(tmp_path, extra="", mode=0o640):
    out = open_dir(tmp_path / "out")
    text = upsmon_conf(["ups@127.0.0.1:1 1 mon pass primary"], out, "m", extra)
    return write_conf(tmp_path / "etc", text, mode), out


def test_refuses_a_config_others_can_read(tmp_path):
    path, _ = minimal(tmp_path, mode=0o644)
    r = run(path.parent, "-F")
    assert r.returncode == 1
    assert ("%s is readable by every user on this host (mode 0644)" % path) in r.stderr
    assert "chmod 0640 %s" % path in r.stderr


def test_broken_config_names_file_and_line(tmp_path):
    path, _ = minimal(tmp_path, extra="POLLFREQ\n")
    r = run(path.parent, "-F")
    assert r.returncode == 1
    n = len(path.read_text().splitlines())
    assert "%s:%d: POLLFREQ takes exactly one value" % (path, n) in r.stderr


def test_powerdown_flag_check(tmp_path):
    path, out = minimal(tmp_path)
    flag = out / "killpower-m"
    assert run(path.parent, "-K").returncode == 1
    flag.write_text(SDMAGIC)
    r = run(path.parent, "-K")
    assert r.returncode == 0 and "Power down flag is set" in r.stdout
    flag.write_text("my precious data\n")
    r = run(path.parent, "-K")
    assert r.returncode == 1 and "not a power-down flag" in r.stderr


def test_command_without_a_running_upsmon(tmp_path):
    path, _ = minimal(tmp_path)
    r = run(path.parent, "-c", "stop")
    assert r.returncode == 1 and "upsmon.pid" in r.stderr and "-P <pid>" in r.stderr
    assert run(path.parent, "-c", "dance").returncode == 2


@pytest.fixture
def stack(tmp_path):
    dev = tmp_path / "sim.dev"
    dev.write_text(OL)
    with Stack(tmp_path, ups={"sim": (dev, "\tpollinterval = 1\n")}) as s:
        s.start()
        yield s


def numlogins(s):
    with s.client(timeout=3) as c:
        return c.get_numlogins("sim")


def uid_of(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


@pytest.mark.root
@pytest.mark.skipif(os.getuid() != 0, reason="privilege separation needs root")
def test_privilege_separation_stop_and_stale_flag(stack):
    out = open_dir(stack.base / "out")
    (out / "killpower-m").write_text(SDMAGIC)          # left from the last outage
    confdir = stack.base / "mon"
    write_conf(confdir, upsmon_conf(["%s 1 monprimary primarypass primary" % stack.target()],
                                    out, "m", FAST))
    mon = ours_upsmon(confdir)
    try:
        wait_until(lambda: numlogins(stack) == 1, 20, "the login", mon.text)
        assert not (out / "killpower-m").exists()      # cleared at start-up
        child = int((confdir / "upsmon.pid").read_text())
        assert child != mon.p.pid
        assert uid_of(mon.p.pid) == 0                   # the parent stays root
        assert uid_of(child) == pwd.getpwnam("nut").pw_uid
        r = run(confdir, "-c", "stop")
        assert r.returncode == 0, r.stderr
        assert mon.p.wait(15) == 0
        assert numlogins(stack) == 0                    # logged out
        assert "stopping: logging out from 1 UPS(es)" in mon.text()
        assert not (confdir / "upsmon.pid").exists()
    finally:
        mon.stop()


@pytest.mark.root
@pytest.mark.skipif(os.getuid() != 0, reason="privilege separation needs root")
def test_monitoring_child_chrooted_with_r(stack):
    """-r: the process that talks to upsd sees only the jail, as nut."""
    out = open_dir(stack.base / "out")
    jail = open_dir(stack.base / "jail")
    confdir = stack.base / "mon"
    write_conf(confdir, upsmon_conf(["%s 1 monsecondary secondarypass secondary"
                                     % stack.target()], out, "m", FAST))
    mon = ours_upsmon(confdir, "-r", str(jail))
    try:
        wait_until(lambda: numlogins(stack) == 1, 20, "the login", mon.text)
        child = int((confdir / "upsmon.pid").read_text())
        assert os.readlink("/proc/%d/root" % child) == os.path.realpath(jail)
        assert os.readlink("/proc/%d/root" % mon.p.pid) == "/"  # the parent: not jailed
        assert uid_of(child) == pwd.getpwnam("nut").pw_uid
        assert run(confdir, "-c", "stop").returncode == 0
        assert mon.p.wait(15) == 0
        assert numlogins(stack) == 0
        assert not (confdir / "upsmon.pid").exists()  # removed by the root parent
    finally:
        mon.stop()


def test_r_needs_privilege_separation(tmp_path):
    path, _ = minimal(tmp_path)
    r = run(path.parent, "-p", "-r", str(tmp_path))
    assert r.returncode == 2 and "-r needs root and privilege separation" in r.stderr


@pytest.mark.root
@pytest.mark.skipif(os.getuid() != 0, reason="privilege separation needs root")
def test_fsd_command_powers_down_through_the_root_parent(stack):
    out = open_dir(stack.base / "out")
    confdir = stack.base / "mon"
    write_conf(confdir, upsmon_conf(["%s 1 monprimary primarypass primary" % stack.target()],
                                    out, "m", FAST + "GPIO_POWERCUT 26 pulse:20\n"
                                    "GPIO_LED_ONLINE 17\nGPIO_SHUTDOWN_BUTTON 5\n"))
    env_mock = {"GPIOZERO_PIN_FACTORY": "mock"}
    os.environ.update(env_mock)
    try:
        mon = ours_upsmon(confdir)
    finally:
        del os.environ["GPIOZERO_PIN_FACTORY"]
    try:
        wait_until(lambda: numlogins(stack) == 1, 20, "the login", mon.text)
        assert run(confdir, "-c", "fsd").returncode == 0
        assert mon.p.wait(20) == 0
    finally:
        mon.stop()
    log = mon.text()
    assert "forced shutdown requested by an operator (upsmon -c fsd)" in log
    with stack.client(timeout=3) as c:
        assert "FSD" in c.get_var("sim", "ups.status").split()
    assert len(lines(out / "shutdown-m")) == 1
    assert (out / "killpower-m").read_text() == SDMAGIC
    # SHUTDOWNCMD and the flag come from the root parent; notifications from the child
    assert os.stat(out / "shutdown-m").st_uid == 0
    assert os.stat(out / "notify-m").st_uid == pwd.getpwnam("nut").pw_uid
    assert "pulsing the power-cut line (GPIO 26): 20 ms" in log


@pytest.mark.root
@pytest.mark.skipif(os.getuid() != 0, reason="privilege separation needs root")
def test_child_reports_a_dead_parent(stack):
    out = open_dir(stack.base / "out")
    confdir = stack.base / "mon"
    write_conf(confdir, upsmon_conf(["%s 1 monprimary primarypass primary" % stack.target()],
                                    out, "m", FAST))
    mon = ours_upsmon(confdir)
    try:
        wait_until(lambda: numlogins(stack) == 1, 20, "the login", mon.text)
        os.kill(mon.p.pid, signal.SIGKILL)
        wait_until(lambda: "NOPARENT " in lines(out / "notify-m"), 20, "NOPARENT", mon.text)
        assert "a power failure can no longer shut this host down" in mon.text()
    finally:
        child = (confdir / "upsmon.pid").read_text().strip() \
            if (confdir / "upsmon.pid").exists() else None
        if child:
            try:
                os.kill(int(child), signal.SIGTERM)
            except OSError:
                pass
        mon.stop()


@pytest.mark.root
@pytest.mark.skipif(os.getuid() != 0, reason="privilege separation needs root")
def test_reload_picks_up_a_new_monitor_line(stack):
    out = open_dir(stack.base / "out")
    confdir = stack.base / "mon"
    monitor = "%s 1 monsecondary secondarypass secondary" % stack.target()
    write_conf(confdir, upsmon_conf([monitor], out, "m", FAST))
    mon = ours_upsmon(confdir)
    try:
        wait_until(lambda: numlogins(stack) == 1, 20, "the login", mon.text)
        write_conf(confdir, upsmon_conf(["%s 1 monprimary primarypass primary"
                                         % stack.target()], out, "m", FAST))
        assert run(confdir, "-c", "reload").returncode == 0
        wait_until(lambda: "logged in as monprimary (primary)" in mon.text(), 20,
                   "the new login", mon.text)
        assert "configuration reloaded" in mon.text()
        set_status(stack, "sim", "OB LB", 3)
        assert mon.p.wait(20) == 0                       # now a primary: it shut down
    finally:
        mon.stop()
    assert len(lines(out / "shutdown-m")) == 1
