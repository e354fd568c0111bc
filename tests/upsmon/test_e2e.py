"""upsmon end to end on loopback: real servers, real secondaries, a simulated UPS.

The UPS is a dummy driver whose .dev file the test rewrites (OL, then OB,
then OB LB). The primary upsmon under test runs in this process so its
GPIO lines can be gpiozero mock pins whose timelines the test reads; the
secondaries are separate processes: ours (`nutapp upsmon`, privilege
separated) and Debian's C upsmon 2.8.0. Every SHUTDOWNCMD and NOTIFYCMD is
a script that records into a file.
"""

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from nutapp.core.upsmon import SDMAGIC, parse_config
from nutapp.upsmon.main import build
from nutapp.upsmon.privileged import Direct
from nutstack import PY, Stack, have_debian_nut

from .kit import (debian_upsmon, lines, make_certs, open_dir, ours_upsmon, set_status,
                  upsmon_conf, wait_until, write_conf)

needs_debian = pytest.mark.skipif(not have_debian_nut(), reason="Debian's nut-client/nut-server "
                                  "are not installed (./build.sh installs them)")

FAST = "POLLFREQ 1\nPOLLFREQALERT 1\nDEADTIME 3\n"
OL = "ups.mfr: Test\nups.model: Sim\nbattery.charge: 100\nups.status: OL\n"


@pytest.fixture
def sim(tmp_path):
    dev = tmp_path / "sim.dev"
    dev.write_text(OL)
    return dev


def stack_for(tmp_path, sim, names=("sim",)):
    ups = {}
    tmp_path.mkdir(parents=True, exist_ok=True)
    for n in names:
        d = tmp_path / ("%s.dev" % n)
        d.write_text(sim.read_text())
        ups[n] = (d, "\tpollinterval = 1\n")
    return Stack(tmp_path, ups=ups)


class Primary:
    """Our upsmon, in this process (its GPIO lines on mock pins), wired as
    `nutapp upsmon -p` wires it."""

    def __init__(self, text, path, factory=None):
        self.conf = parse_config(text, str(path))
        self.powercut, self.leds, self.runner = build(self.conf, str(path), True,
                                                      pin_factory=factory, timeout=3)
        self.runner.privileged = Direct(self.conf, self.powercut)
        self.thread = threading.Thread(target=self.runner.run, daemon=True)
        self.thread.start()

    def phase(self):
        return self.runner.core.phase

    def stop(self):
        self.runner.request_stop()
        self.thread.join(15)
        if self.leds:
            self.leds.close()


def numlogins(stack, ups):
    with stack.client(timeout=3) as c:
        return c.get_numlogins(ups)


def status(stack, ups):
    with stack.client(timeout=3) as c:
        return c.get_var(ups, "ups.status")


def flag_text(path):
    return Path(path).read_text() if Path(path).exists() else None


@needs_debian
def test_primary_with_our_and_debians_secondaries(tmp_path, sim, caplog):
    """OB, then LB: FSD, both secondaries shut down and log out, then the primary
    writes POWERDOWNFLAG, runs SHUTDOWNCMD and pulses the power-cut line."""
    from gpiozero.pins.mock import MockFactory

    caplog.set_level(logging.INFO, logger="nutapp.upsmon")
    factory = MockFactory()
    with stack_for(tmp_path, sim) as s:
        s.start()
        out = open_dir(s.base / "out")
        target = s.target("sim")
        sec = FAST + "HOSTSYNC 30\nFINALDELAY 0\nRUN_AS_USER nut\n"
        ours_dir = s.base / "mon-ours"
        write_conf(ours_dir, upsmon_conf(["%s 1 monsecondary secondarypass secondary" % target],
                                         out, "ours", sec))
        deb_dir = s.base / "mon-debian"
        write_conf(deb_dir, upsmon_conf(["%s 1 monsecondary secondarypass slave" % target],
                                        out, "debian", sec), mode=0o600)
        prim_text = upsmon_conf(
            ["%s 1 monprimary primarypass primary" % target], out, "primary",
            FAST + "HOSTSYNC 20\nFINALDELAY 1\nGPIO_POWERCUT 26 pulse:50\n"
            "GPIO_LED_ONLINE 17\nGPIO_LED_ONBATT 27 blink:20,20\nGPIO_LED_LOWBATT 22\n")
        prim_path = write_conf(s.base / "mon-primary", prim_text)

        ours = ours_upsmon(ours_dir)
        deb = debian_upsmon(deb_dir)
        prim = None
        try:
            wait_until(lambda: numlogins(s, "sim") == 2, 20, "both secondaries to log in",
                       lambda: ours.text() + deb.text())
            prim = Primary(prim_text, prim_path, factory)
            wait_until(lambda: numlogins(s, "sim") == 3, 20, "the primary to log in")
            online, onbatt, lowbatt = (factory.pin(n) for n in (17, 27, 22))
            wait_until(lambda: online.state, 10, "the on-line LED")

            set_status(s, "sim", "OB DISCHRG", 60)
            wait_until(lambda: "ONBATT sim@" in " ".join(lines(out / "notify-primary")), 20,
                       "the primary's ONBATT")
            wait_until(lambda: len(onbatt.states) >= 3, 10, "the on-battery LED to blink")
            assert not (out / "shutdown-primary").exists()

            set_status(s, "sim", "OB LB", 5)
            wait_until(lambda: prim.phase() == "done", 40, "the primary's shutdown",
                       lambda: ours.text() + deb.text() + caplog.text)
            prim.thread.join(10)
        finally:
            if prim is not None:
                prim.stop()
            ours.stop()
            deb.stop()

        # both secondaries saw the FSD and ran their SHUTDOWNCMD
        assert len(lines(out / "shutdown-ours")) == 1, ours.text()
        assert len(lines(out / "shutdown-debian")) == 1, deb.text()
        assert flag_text(out / "killpower-ours") == SDMAGIC
        assert flag_text(out / "killpower-debian") == SDMAGIC
        assert "FSD sim@" in " ".join(lines(out / "notify-ours"))
        assert "FSD sim@" in " ".join(lines(out / "notify-debian"))
        # the primary set FSD, waited for them, then powered down
        assert "FSD" in status(s, "sim").split()
        assert "All secondaries have logged out; shutting down" in caplog.text
        assert "HOSTSYNC (20 s) passed" not in caplog.text
        assert len(lines(out / "shutdown-primary")) == 1
        assert flag_text(out / "killpower-primary") == SDMAGIC
        # NOTIFYCMD runs in a process of its own for each event, as in NUT, so
        # LOWBATT and the FSD it causes (same poll) may reach the file in
        # either order; the log, written in the monitor, has their order.
        kinds = [l.split()[0] for l in lines(out / "notify-primary")]
        assert kinds[0] == "ONBATT" and sorted(kinds[1:3]) == ["FSD", "LOWBATT"], kinds
        assert kinds[-1] == "SHUTDOWN", kinds
        low = caplog.text.index("reports a low battery")
        assert caplog.text.index("is in forced shutdown (FSD)") > low
        assert caplog.text.index("lost mains power") < low
        # the power-cut line: low until the end, then one pulse
        assert [st.state for st in factory.pin(26).states] == [False, True, False]
        assert [st.state for st in online.states] == [False, True, False]
        assert [st.state for st in lowbatt.states][:2] == [False, True]   # lit at the end
        # upsmon -K agrees the UPS should now cut the power
        env = dict(os.environ, NUT_CONFPATH=str(prim_path.parent))
        assert subprocess.run(PY + ["upsmon", "-K"], env=env).returncode == 0
        os.unlink(out / "killpower-primary")
        assert subprocess.run(PY + ["upsmon", "-K"], env=env,
                              capture_output=True).returncode == 1


@needs_debian
def test_ours_as_secondary_of_debians_stack(tmp_path, sim):
    """Debian's upsd, dummy-ups and upsmon primary; ours is the secondary."""
    with stack_for(tmp_path, sim) as s:
        s.start(server="debian", drivers="debian")
        out = open_dir(s.base / "out")
        target = s.target("sim")
        ours_dir = s.base / "mon-ours"
        write_conf(ours_dir, upsmon_conf(["%s 1 monsecondary secondarypass secondary" % target],
                                         out, "ours", FAST + "HOSTSYNC 30\nFINALDELAY 0\n"))
        deb_dir = s.base / "mon-debian"
        write_conf(deb_dir, upsmon_conf(["%s 1 monprimary primarypass master" % target], out,
                                        "debian", FAST + "HOSTSYNC 20\nFINALDELAY 0\n"
                                        "RUN_AS_USER nut\n"), mode=0o600)
        ours = ours_upsmon(ours_dir)
        deb = debian_upsmon(deb_dir)
        try:
            wait_until(lambda: numlogins(s, "sim") == 2, 20, "both upsmons to log in",
                       lambda: ours.text() + deb.text() + s.log_text())
            set_status(s, "sim", "OB LB", 5)
            wait_until(lambda: lines(out / "shutdown-debian"), 40, "Debian's primary to shut down",
                       lambda: ours.text() + deb.text())
        finally:
            ours.stop()
            deb.stop()
        assert len(lines(out / "shutdown-ours")) == 1, ours.text()
        assert flag_text(out / "killpower-ours") == SDMAGIC
        log = ours.text()
        assert "forced shutdown (FSD) is set" in log
        assert "logged in as monsecondary (secondary)" in log
        # Debian's primary did not need its HOSTSYNC: ours logged out
        assert flag_text(out / "killpower-debian") == SDMAGIC
        # Debian's flag file reads as ours (same marker)
        env = dict(os.environ, NUT_CONFPATH=str(deb_dir))
        assert subprocess.run(PY + ["upsmon", "-K"], env=env,
                              capture_output=True).returncode == 0


def test_lost_contact_on_battery_counts_as_low_battery(tmp_path, sim, caplog):
    caplog.set_level(logging.INFO, logger="nutapp.upsmon")
    with stack_for(tmp_path, sim) as s:
        s.start()
        out = open_dir(s.base / "out")
        text = upsmon_conf(["%s 1 monprimary primarypass primary" % s.target("sim")], out,
                           "primary", FAST + "HOSTSYNC 5\nFINALDELAY 0\n")
        prim = Primary(text, write_conf(s.base / "mon", text))
        try:
            set_status(s, "sim", "OB DISCHRG", 60)
            wait_until(lambda: "ONBATT" in " ".join(lines(out / "notify-primary")), 20,
                       "ONBATT")
            upsd = [p for p in s.procs if "upsd" in " ".join(p.args)][0]
            upsd.send_signal(signal.SIGTERM)
            upsd.wait(10)
            wait_until(lambda: prim.phase() == "done", 30, "the shutdown", lambda: caplog.text)
        finally:
            prim.stop()
        kinds = [l.split()[0] for l in lines(out / "notify-primary")]
        assert kinds[:2] == ["ONBATT", "COMMBAD"] and kinds[-1] == "SHUTDOWN"
        assert "LOWBATT" not in kinds
        assert "no answer for more than DEADTIME (3 s) while on battery" in caplog.text
        assert "setting FSD failed" in caplog.text
        assert len(lines(out / "shutdown-primary")) == 1


def test_power_back_before_low_battery_means_no_shutdown(tmp_path, sim):
    with stack_for(tmp_path, sim) as s:
        s.start()
        out = open_dir(s.base / "out")
        text = upsmon_conf(["%s 1 monprimary primarypass primary" % s.target("sim")], out,
                           "primary", FAST + "HOSTSYNC 5\nFINALDELAY 0\n")
        prim = Primary(text, write_conf(s.base / "mon", text))
        try:
            wait_until(lambda: numlogins(s, "sim") == 1, 20, "the login")
            set_status(s, "sim", "OB DISCHRG", 40)
            wait_until(lambda: "ONBATT" in " ".join(lines(out / "notify-primary")), 20,
                       "ONBATT")
            set_status(s, "sim", "OL CHRG", 41)
            wait_until(lambda: "ONLINE" in " ".join(lines(out / "notify-primary")), 20,
                       "ONLINE")
            assert prim.phase() == "monitor"
        finally:
            prim.stop()
        assert not (out / "shutdown-primary").exists()
        assert "FSD" not in status(s, "sim").split()
        assert [l.split()[0] for l in lines(out / "notify-primary")] == ["ONBATT", "ONLINE"]


def test_two_ups_primary_with_minsupplies_two(tmp_path, sim, caplog):
    caplog.set_level(logging.INFO, logger="nutapp.upsmon")
    with stack_for(tmp_path, sim, names=("left", "right")) as s:
        s.start()
        out = open_dir(s.base / "out")
        text = upsmon_conf(["%s 1 monprimary primarypass primary" % s.target("left"),
                            "%s 1 monprimary primarypass primary" % s.target("right")],
                           out, "primary", FAST + "MINSUPPLIES 2\nHOSTSYNC 5\nFINALDELAY 0\n")
        prim = Primary(text, write_conf(s.base / "mon", text))
        try:
            wait_until(lambda: numlogins(s, "left") == 1 and numlogins(s, "right") == 1, 20,
                       "the logins")
            set_status(s, "left", "OB LB", 5)
            wait_until(lambda: prim.phase() == "done", 30, "the shutdown", lambda: caplog.text)
        finally:
            prim.stop()
        assert "power value 1 is below MINSUPPLIES 2" in caplog.text
        assert "FSD" in status(s, "left").split()
        assert status(s, "right").split() == ["FSD", "OL"]   # FSD on every UPS we are primary for
        assert len(lines(out / "shutdown-primary")) == 1


def test_tls_required_and_verified(tmp_path, sim, caplog):
    """FORCESSL and CERTVERIFY: logs in over TLS to a server with a CA-signed
    certificate; refuses a server that offers no TLS."""
    caplog.set_level(logging.INFO, logger="nutapp.upsmon")
    with stack_for(tmp_path, sim) as s:
        ca, server = make_certs(s.conf)
        s.write("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\n" % (s.port, server))
        s.fix_modes()
        s.start()
        out = open_dir(s.base / "out")
        text = upsmon_conf(["%s 1 monprimary primarypass primary" % s.target("sim")], out,
                           "primary", FAST + "CERTPATH %s\nCERTVERIFY 1\nFORCESSL 1\n" % ca)
        prim = Primary(text, write_conf(s.base / "mon", text))
        try:
            # 60 s: until upsd keeps requests that arrive with the end of the TLS
            # handshake (a fix on the security branch), a login may need retries
            wait_until(lambda: numlogins(s, "sim") == 1, 60, "the TLS login", lambda: caplog.text)
        finally:
            prim.stop()
        assert "logged in as monprimary (primary, TLS)" in caplog.text
        # CERTHOST: this server must present a certificate named otherhost
        caplog.clear()
        host = "127.0.0.1:%d" % s.port
        text = upsmon_conf(["%s 1 monprimary primarypass primary" % s.target("sim")], out,
                           "certhost", FAST + 'CERTPATH %s\nCERTHOST "%s" "otherhost" 1 1\n'
                           % (ca, host))
        prim = Primary(text, write_conf(s.base / "mon2", text))
        try:
            wait_until(lambda: "COMMBAD" in " ".join(lines(out / "notify-certhost")), 20,
                       "COMMBAD", lambda: caplog.text)
            assert numlogins(s, "sim") == 0
        finally:
            prim.stop()
        assert "name does not match" in caplog.text
    caplog.clear()
    with stack_for(tmp_path / "plain", sim) as s:
        s.start()
        out = open_dir(s.base / "out")
        text = upsmon_conf(["%s 1 monprimary primarypass primary" % s.target("sim")], out,
                           "primary", FAST + "FORCESSL 1\n")
        prim = Primary(text, write_conf(s.base / "mon", text))
        try:
            wait_until(lambda: "COMMBAD" in " ".join(lines(out / "notify-primary")), 20,
                       "COMMBAD", lambda: caplog.text)
            assert numlogins(s, "sim") == 0
        finally:
            prim.stop()
        assert "does not offer TLS" in caplog.text and "FORCESSL requires it" in caplog.text


def test_shutdown_input_asks_for_an_orderly_shutdown(tmp_path, sim, caplog):
    """A HAT raising its shutdown line (held long enough) works like upsmon -c fsd."""
    from gpiozero.pins.mock import MockFactory

    caplog.set_level(logging.INFO, logger="nutapp.upsmon")
    factory = MockFactory()
    with stack_for(tmp_path, sim) as s:
        s.start()
        out = open_dir(s.base / "out")
        text = upsmon_conf(["%s 1 monprimary primarypass primary" % s.target("sim")], out,
                           "primary", FAST + "HOSTSYNC 5\nFINALDELAY 0\n"
                           "GPIO_SHUTDOWN_BUTTON 5 pull_down hold:100\n"
                           "GPIO_POWERCUT 26 level\n")
        prim = Primary(text, write_conf(s.base / "mon", text), factory)
        try:
            wait_until(lambda: numlogins(s, "sim") == 1, 20, "the login")
            assert factory.pin(26).state is False
            factory.pin(5).drive_high()
            wait_until(lambda: prim.phase() == "done", 20, "the shutdown", lambda: caplog.text)
        finally:
            prim.stop()
        assert "forced shutdown requested by the shutdown input (GPIO 5)" in caplog.text
        assert "FSD" in status(s, "sim").split()
        assert len(lines(out / "shutdown-primary")) == 1
        assert [st.state for st in factory.pin(26).states] == [False, True]
