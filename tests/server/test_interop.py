"""Real NUT peers against our stack, and our tools against Debian's stack.

Debian's nut-client/nut-server 2.8.0 binaries are the reference: their
upsc, upscmd, upsrw, upslog and upsmon talk to our upsd; our upsc, upscmd
and upsrw talk to Debian's upsd; and each upsd serves the other's driver.
"""

import os
import signal
import subprocess
import time

import pytest

from nutstack import APC_DUMP, DDL, Stack, have_debian_nut, strip_noise

pytestmark = pytest.mark.skipif(not have_debian_nut(), reason="Debian's nut-client/nut-server "
                                "are not installed (./build.sh installs them)")

SEQ = """ups.mfr: Seq Inc
ups.model: Seq 1
battery.charge: 100
ups.status: OL
TIMER 1
ups.status: OB DISCHRG
battery.charge: 40
TIMER 1
"""


@pytest.fixture
def ours(tmp_path):
    with Stack(tmp_path) as s:
        s.start()
        yield s


@pytest.fixture
def debian(tmp_path):
    with Stack(tmp_path) as s:
        s.start(server="debian", drivers="debian")
        yield s


def test_debian_upsc_lists_and_reads(ours):
    r = ours.debian("upsc", "-l", "127.0.0.1:%d" % ours.port)
    assert r.stdout == "dummy\n"
    r = ours.debian("upsc", "-L", "127.0.0.1:%d" % ours.port)
    assert r.stdout == "dummy: Description unavailable\n"
    r = ours.debian("upsc", ours.target(), "ups.status")
    assert r.stdout == "OL DISCHRG\n"
    r = ours.debian("upsc", ours.target(), "no.such.var", check=False)
    assert r.returncode != 0
    assert "Error: Variable not supported by UPS" in r.stderr
    r = ours.debian("upsc", "nosuch@127.0.0.1:%d" % ours.port, check=False)
    assert "Error: Unknown UPS" in r.stderr


def test_same_output_as_debian_stack(tmp_path):
    """Every upsc/upsrw/upscmd -l line matches Debian's C stack on the same dump."""
    outputs = {}
    for kind in ("debian", "ours"):
        with Stack(tmp_path / kind) as s:
            s.start(server=kind, drivers=kind)
            outputs[kind] = [
                strip_noise(s.debian("upsc", s.target()).stdout),
                strip_noise(s.debian("upsc", "-L", "127.0.0.1:%d" % s.port).stdout),
            ]
    ours, theirs = outputs["ours"], outputs["debian"]
    # driver.version.internal etc. are the same by design; everything must match.
    assert ours == theirs


def test_debian_upsrw_and_upscmd_against_ours(ours):
    r = ours.debian("upsrw", "-s", "ups.delay.shutdown=45", "-u", "admin", "-p", "adminpass",
                    ours.target())
    assert "OK" in r.stderr
    for _ in range(50):
        if ours.debian("upsc", ours.target(), "ups.delay.shutdown").stdout == "45\n":
            break
        time.sleep(0.1)
    else:
        pytest.fail("SET not reflected")
    r = ours.debian("upsrw", "-s", "ups.delay.shutdown=46", "-u", "admin", "-p", "wrong",
                    ours.target(), check=False)
    assert r.returncode != 0 and "ACCESS-DENIED" in r.stderr
    r = ours.debian("upscmd", "-l", ours.target())
    assert "load.off" in r.stdout
    r = ours.debian("upscmd", "-u", "admin", "-p", "adminpass", "-w", ours.target(), "load.off")
    assert "SUCCESS" in r.stderr
    assert ours.debian("upsc", ours.target(), "ups.status").stdout == "OFF\n"
    r = ours.debian("upscmd", "-u", "viewer", "-p", "viewerpass", ours.target(), "load.off",
                    check=False)
    assert r.returncode != 0 and ("ACCESS-DENIED" in r.stderr or "Access denied" in r.stderr)


def test_debian_upslog_records_our_data(ours, tmp_path):
    log = tmp_path / "ups.log"
    p = subprocess.Popen(["upslog", "-s", ours.target(), "-l", str(log), "-i", "1", "-F",
                          "-f", "%VAR ups.status% %VAR battery.charge%"], env=ours.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(60):
            if log.exists() and "OL DISCHRG 100" in log.read_text():
                break
            time.sleep(0.1)
    finally:
        p.terminate()
        p.wait(5)
    assert "OL DISCHRG 100" in log.read_text()


def test_our_clients_against_debian_upsd(debian):
    r = debian.ours("upsc", debian.target())
    theirs = strip_noise(debian.debian("upsc", debian.target()).stdout)
    assert r.stdout.strip() == theirs.strip()
    assert debian.ours("upsc", "-l", "127.0.0.1:%d" % debian.port).stdout == "dummy\n"
    r = debian.ours("upsrw", "-s", "ups.delay.shutdown=33", "-u", "admin", "-p", "adminpass",
                    "-w", debian.target())
    assert "SUCCESS" in r.stderr
    assert debian.ours("upsc", debian.target(), "ups.delay.shutdown").stdout == "33\n"
    r = debian.ours("upscmd", "-u", "admin", "-p", "adminpass", debian.target(), "load.off")
    assert "OK" in r.stderr
    r = debian.ours("upsc", debian.target(), "nope", check=False)
    assert r.returncode == 1 and r.stderr == "Error: Variable not supported by UPS\n"
    ours_rw = debian.ours("upsrw", debian.target()).stdout
    assert ours_rw == debian.debian("upsrw", debian.target()).stdout


@pytest.mark.parametrize("server,drivers", [("debian", "ours"), ("ours", "debian")])
def test_mixed_server_and_driver(tmp_path, server, drivers):
    """Our driver under Debian's upsd, Debian's driver under ours."""
    seq = tmp_path / "seq.seq"
    seq.write_text(SEQ)
    with Stack(tmp_path / "s", ups={"dummy": (APC_DUMP, ""), "seq": (seq, "")}) as s:
        s.start(server=server, drivers=drivers)
        assert s.debian("upsc", s.target("dummy"), "device.model").stdout == "BK650M2-CH\n"
        seen = set()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and len(seen) < 2:
            seen.add(s.debian("upsc", s.target("seq"), "ups.status").stdout.strip())
            time.sleep(0.2)
        assert {"OL", "OB DISCHRG"} <= seen, seen
        r = s.debian("upsrw", "-s", "ups.delay.shutdown=99", "-u", "admin", "-p", "adminpass",
                     s.target("dummy"))
        assert "OK" in r.stderr
        for _ in range(50):
            if s.debian("upsc", s.target("dummy"), "ups.delay.shutdown").stdout == "99\n":
                break
            time.sleep(0.1)
        else:
            pytest.fail("SET did not reach the driver")


def test_debian_upsmon_secondary_sees_fsd(ours, tmp_path):
    """Debian's upsmon as a secondary logs in, and shuts down on our FSD."""
    flag = tmp_path / "shutdown-ran"
    script = tmp_path / "shutdown.sh"
    script.write_text("#!/bin/sh\necho ran > %s\n" % flag)
    script.chmod(0o755)
    conf = tmp_path / "mon"
    conf.mkdir()
    (conf / "upsmon.conf").write_text(
        "MONITOR %s 1 monsecondary secondarypass secondary\n"
        "MINSUPPLIES 1\nPOLLFREQ 1\nPOLLFREQALERT 1\nHOSTSYNC 2\nDEADTIME 3\nFINALDELAY 0\n"
        "SHUTDOWNCMD \"%s\"\nPOWERDOWNFLAG %s/killpower\nRUN_AS_USER root\n"
        % (ours.target(), script, tmp_path))
    (conf / "upsmon.conf").chmod(0o600)
    (conf / "nut.conf").write_text("MODE=netclient\n")
    env = dict(os.environ, NUT_CONFPATH=str(conf), NUT_STATEPATH=str(tmp_path))
    # upsmon 2.8.0 keeps its pid file in /run/nut whatever NUT_STATEPATH says:
    # a private /run/nut keeps it from meeting another upsmon on this host.
    mon = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut && "
                            "exec /lib/nut/upsmon -F"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with ours.client() as c:
            for _ in range(100):
                if c.get_numlogins("dummy") == 1:
                    break
                time.sleep(0.1)
            assert c.get_numlogins("dummy") == 1
            assert len(c.list_clients("dummy")) == 1
            c.authenticate("admin", "adminpass")
            c.fsd("dummy")
        for _ in range(100):
            if flag.exists():
                break
            time.sleep(0.1)
        assert flag.exists(), "Debian's upsmon did not run SHUTDOWNCMD on FSD"
    finally:
        os.killpg(mon.pid, signal.SIGTERM)  # upsmon forks: stop its whole group
        try:
            mon.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(mon.pid, signal.SIGKILL)
            mon.wait()
