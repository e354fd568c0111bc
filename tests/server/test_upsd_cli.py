"""upsd as an operator runs it: config errors, reload, stop, listeners,
staleness; upsdrvctl supervision."""

import os
import signal
import socket
import subprocess
import time

import pytest

from nutstack import APC_DUMP, DEFAULT_USERS, PY, Stack
from ports import free_port
from nutapp.clients.client import NutClient, ServerError


def run_upsd(stack, *args, timeout=10):
    return subprocess.run(PY + ["upsd", "-F"] + list(args), env=stack.env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("tool,name,text,needle", [
    ("upsd", "upsd.conf", "MAXAGE 10\nLISTEN 127.0.0.1 nope\n", "upsd.conf:2: "),
    ("upsd", "upsd.conf", 'CERTFILE "unterminated\n', "upsd.conf:1: "),
    ("upsd", "ups.conf", "[x]\n  port = a.dev\n", "ups.conf:1: UPS [x] has no 'driver ='"),
    ("upsdrvctl", "ups.conf", "[x]\n driver = nosuch\n port = a\n",
     "ups.conf:1: UPS [x]: unknown driver 'nosuch'"),
    ("upsd", "upsd.users", "[a]\n password = x\n[a]\n", "upsd.users:3: user [a] defined twice"),
])
def test_broken_config_gives_one_line_and_nonzero_exit(tmp_path, tool, name, text, needle):
    with Stack(tmp_path) as s:
        s.write(name, text)
        s.fix_modes()
        if tool == "upsd":
            r = run_upsd(s)
        else:
            r = subprocess.run(PY + [tool, "-F", "start"], env=s.env, capture_output=True,
                               text=True, timeout=10)
        assert r.returncode != 0
        errors = [l for l in r.stderr.splitlines() if needle in l]
        assert len(errors) == 1, r.stderr
        assert "Traceback" not in r.stderr


def test_no_ups_refused_unless_allow_no_device(tmp_path):
    with Stack(tmp_path, ups={}) as s:
        r = run_upsd(s)
        assert r.returncode != 0 and "no UPS defined" in r.stderr
        s.write("upsd.conf", "LISTEN 127.0.0.1 %d\nALLOW_NO_DEVICE 1\n" % s.port)
        s.fix_modes()
        s.start_upsd()
        s.wait_listening()
        assert s.debian("upsc", "-l", "127.0.0.1:%d" % s.port).stdout == ""


def test_sighup_reload_keeps_clients(tmp_path):
    with Stack(tmp_path) as s:
        s.start()
        c = s.client()
        c.authenticate("admin", "adminpass")
        assert c.get_var("dummy", "ups.status") == "OL DISCHRG"
        s.write("ups.conf", (s.conf / "ups.conf").read_text() +
                "\n[second]\n\tdriver = dummy-ups\n\tport = dummy.dev\n\tdesc = \"added\"\n")
        s.write("upsd.users", (s.conf / "upsd.users").read_text() +
                "\n[newuser]\n\tpassword = np\n\tactions = FSD\n")
        s.fix_modes()
        s.procs[-1].send_signal(signal.SIGHUP)
        for _ in range(50):
            names = [n for n, _ in c.list_ups()]
            if "second" in names:
                break
            time.sleep(0.1)
        assert names == ["dummy", "second"]
        assert c.get_var("dummy", "ups.status") == "OL DISCHRG"  # same connection
        with s.client() as c2:
            c2.authenticate("newuser", "np")
            assert c2.fsd("dummy") == "OK FSD-SET"
        # A broken file on reload keeps the running configuration.
        s.write("upsd.users", "[broken\n")
        s.fix_modes()
        s.procs[-1].send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with s.client() as c3:
            c3.authenticate("newuser", "np")
            assert c3.fsd("dummy") == "OK FSD-SET"
        assert "reload failed, keeping the running configuration" in s.log_text()
        c.close()


def test_c_reload_and_c_stop_and_sigterm_exit_0(tmp_path):
    with Stack(tmp_path) as s:
        s.start()
        upsd = s.procs[-1]
        assert (s.state / "upsd.pid").read_text().strip() == str(upsd.pid)
        r = subprocess.run(PY + ["upsd", "-c", "reload"], env=s.env, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        time.sleep(0.3)
        assert upsd.poll() is None
        r = subprocess.run(PY + ["upsd", "-c", "stop"], env=s.env, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert upsd.wait(10) == 0
        assert not (s.state / "upsd.pid").exists()
        p = s.start_upsd()
        s.wait_ready()
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0


def test_several_listeners_ipv4_ipv6_and_any(tmp_path):
    with Stack(tmp_path) as s:
        p2 = free_port()
        s.write("upsd.conf", "LISTEN 127.0.0.1 %d\nLISTEN ::1 %d\nLISTEN 127.0.0.1 %d\n"
                % (s.port, s.port, p2))
        s.fix_modes()
        s.start()
        for host, port in (("127.0.0.1", s.port), ("::1", s.port), ("127.0.0.1", p2)):
            with NutClient(host, port) as c:
                assert c.get_var("dummy", "ups.status") == "OL DISCHRG"
        r = s.debian("upsc", "dummy@[::1]:%d" % s.port, "ups.status")
        assert r.stdout == "OL DISCHRG\n"
    with Stack(tmp_path / "any") as s:
        s.write("upsd.conf", "LISTEN * %d\n" % s.port)
        s.fix_modes()
        s.start()
        for host in ("127.0.0.1", "::1", "127.0.0.2"):
            with NutClient(host, s.port) as c:
                assert c.get_var("dummy", "ups.status") == "OL DISCHRG"


def test_default_listen_is_loopback_only(tmp_path):
    with Stack(tmp_path, listen="") as s:
        s.port = 3493
        try:
            socket.create_connection(("127.0.0.1", 3493), 0.2).close()
            pytest.skip("port 3493 is taken on this machine")
        except OSError:
            pass
        s.start()
        out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        listening = [l.split()[3] for l in out.splitlines() if l.split()[3].endswith(":3493")]
        assert sorted(listening) == ["127.0.0.1:3493", "[::1]:3493"]


def test_maxage_staleness_when_driver_hangs(tmp_path):
    with Stack(tmp_path, upsd_conf="MAXAGE 3\n") as s:
        s.start()
        driver = s.procs[0]
        os.kill(driver.pid, signal.SIGSTOP)
        try:
            with s.client() as c:
                deadline = time.monotonic() + 10
                err = None
                while time.monotonic() < deadline:
                    try:
                        c.get_var("dummy", "ups.status")
                    except ServerError as e:
                        err = e.word
                        break
                    time.sleep(0.2)
                assert err == "DATA-STALE"
        finally:
            os.kill(driver.pid, signal.SIGCONT)
        s.wait_ready()


def test_driver_gone_then_back(tmp_path):
    with Stack(tmp_path) as s:
        s.start()
        s.procs[0].terminate()
        s.procs[0].wait(10)
        with s.client() as c:
            deadline = time.monotonic() + 5
            word = None
            while time.monotonic() < deadline and word is None:
                try:
                    c.get_var("dummy", "ups.status")
                    time.sleep(0.1)
                except ServerError as e:
                    word = e.word
            assert word == "DRIVER-NOT-CONNECTED"
        s.start_drivers()
        s.wait_ready()


def test_upsdrvctl_restarts_a_dead_driver_and_stops(tmp_path):
    with Stack(tmp_path) as s:
        ctl = s.spawn(PY + ["upsdrvctl", "-F", "start"], "upsdrvctl")
        s.start_upsd()
        s.wait_ready()
        pidfile = s.state / "dummy-ups-dummy.pid"
        first = int(pidfile.read_text())
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if int(pidfile.read_text()) != first:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        assert int(pidfile.read_text()) != first
        s.wait_ready()
        r = subprocess.run(PY + ["upsdrvctl", "stop"], env=s.env, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert ctl.wait(15) == 0


def test_driver_options_override_default_and_ignorelb(tmp_path):
    extra = ("\toverride.battery.charge = 42\n\tdefault.ups.id = fromconf\n"
             "\tdefault.battery.charge.low = 99\n\tignorelb\n")
    with Stack(tmp_path, ups={"dummy": (APC_DUMP, extra)}) as s:
        s.start()
        with s.client() as c:
            assert c.get_var("dummy", "battery.charge") == "42"
            assert c.get_var("dummy", "ups.id") == "fromconf"
            assert c.get_var("dummy", "battery.charge.low") == "50"  # the device's value wins
            assert c.get_var("dummy", "driver.flag.ignorelb") == "enabled"
            assert c.get_var("dummy", "ups.status") == "OL DISCHRG LB"  # 42 < 50


def test_allowfrom_that_is_no_network_is_named_at_start(tmp_path):
    users = DEFAULT_USERS + "\n[lan]\n\tpassword = lanpass123\n\tinstcmds = ALL\n" \
        "\tallowfrom = 10.0.0.0/8, 127.0.0.1\n"
    with Stack(tmp_path, users=users) as s:
        s.start()
        s.wait_ready()
        log = s.log_text()
        assert "user [lan]: allowfrom '10.0.0.0/8,' is not a network" in log, log
        assert "'127.0.0.1' is not" not in log
        with s.client() as c:  # 127.0.0.1, a network, still lets it in
            c.authenticate("lan", "lanpass123")
            c.instcmd("dummy", "load.off")  # ServerError on ERR ACCESS-DENIED
