"""usbhid-ups under the real driver framework, served by Debian's NUT upsd.

The driver runs in this process (its USB bus is the fake one) inside
`nutapp.drivers.main.DriverProcess`, with its socket in a state directory;
Debian's upsd 2.8.0 reads that socket and Debian's upsc asks upsd. The UPS
takes a command and a setting from Debian's upscmd and upsrw, then is
unplugged and plugged back at another address: upsc must see the data go
stale and come back with the new readings.
"""

import asyncio
import grp
import os
import shutil
import tempfile

import pytest

from nutapp import paths
from nutapp.drivers.main import DriverProcess
from nutapp.drivers.usbhid.driver import UsbHidUps

from ports import free_port

from .fakeusb import FakeUps, FakeBus

UPSD = next((p for p in ("/lib/nut/upsd", "/usr/sbin/upsd") if os.path.exists(p)), None)
UPSC = shutil.which("upsc")
UPSCMD = shutil.which("upscmd")
UPSRW = shutil.which("upsrw")
GUARD = 60  # seconds: only a safety net against a hang, never a measured bound

pytestmark = pytest.mark.skipif(None in (UPSD, UPSC, UPSCMD, UPSRW),
                                reason="Debian's nut-server/nut-client not installed")


class NutDirs:
    """ups.conf, upsd.conf and upsd.users in a directory the nut user can read."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="nutapp-usbhid-", dir="/tmp")
        self.conf = os.path.join(self.base, "etc")
        self.state = os.path.join(self.base, "state")
        os.mkdir(self.conf)
        os.mkdir(self.state)
        self.port = free_port()
        self.write("ups.conf", "[ups]\n\tdriver = usbhid-ups\n\tport = auto\n")
        self.write("upsd.conf", "LISTEN 127.0.0.1 %d\n" % self.port)
        self.write("upsd.users", "[admin]\n\tpassword = adminpass\n\tactions = SET\n"
                   "\tinstcmds = ALL\n")
        try:
            self.gid = grp.getgrnam("nut").gr_gid
        except KeyError:
            self.gid = None
        if os.getuid() == 0 and self.gid is not None:
            for path, mode in ((self.base, 0o750), (self.conf, 0o750), (self.state, 0o770)):
                os.chown(path, 0, self.gid)
                os.chmod(path, mode)
            for name in os.listdir(self.conf):
                os.chown(os.path.join(self.conf, name), 0, self.gid)
                os.chmod(os.path.join(self.conf, name), 0o640)
        self.env = dict(os.environ, NUT_CONFPATH=self.conf, NUT_STATEPATH=self.state)

    def write(self, name, text):
        with open(os.path.join(self.conf, name), "w") as f:
            f.write(text)

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


async def run_tool(dirs, tool, *args):
    p = await asyncio.create_subprocess_exec(
        tool, *args, env=dirs.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await p.communicate()
    return p.returncode, out.decode(), err.decode()


async def upsc(dirs, *args):
    return await run_tool(dirs, UPSC, "ups@127.0.0.1:%d" % dirs.port, *args)


async def until(check, what):
    """Poll `check` (a coroutine function) until it returns true."""
    async def loop():
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.2)
    try:
        return await asyncio.wait_for(loop(), GUARD)
    except asyncio.TimeoutError:
        raise AssertionError("never happened: " + what)


def test_unplug_and_replug_seen_through_debian_upsd():
    ups = FakeUps("apc-back-ups-es-850g2.ups", address=5)
    bus = FakeBus(ups)
    cls = type("FakeBusUsbHidUps", (UsbHidUps,), {"backend": bus})
    dirs = NutDirs()

    async def go():
        sockpath = paths.driver_socket(dirs.state, "usbhid-ups", "ups")
        proc = DriverProcess(cls, "ups", {"driver": "usbhid-ups", "port": "auto",
                                          "pollinterval": "1"}, sockpath)
        proc.bind()
        if os.getuid() == 0 and dirs.gid is not None:
            os.chown(sockpath, 0, dirs.gid)
        driver = asyncio.ensure_future(proc.run())
        argv = [UPSD, "-F"] + (["-u", "nut"] if os.getuid() == 0 else [])
        upsd = await asyncio.create_subprocess_exec(
            *argv, env=dirs.env, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            async def online():
                rc, out, _ = await upsc(dirs)
                return rc == 0 and "ups.status: OL" in out and out
            dump = await until(online, "upsc shows the UPS online")
            assert "battery.charge: 100" in dump
            assert "ups.model: Back-UPS ES 850G2" in dump
            assert "driver.name: usbhid-ups" in dump

            # a command and a setting, from Debian's clients through upsd
            target = "ups@127.0.0.1:%d" % dirs.port
            rc, _, err = await run_tool(dirs, UPSCMD, "-u", "admin", "-p", "adminpass",
                                        target, "beeper.disable")
            assert rc == 0, err
            rc, _, err = await run_tool(dirs, UPSRW, "-s", "battery.charge.low=25", "-u",
                                        "admin", "-p", "adminpass", target)
            assert rc == 0, err

            async def written():
                return len(ups.sets) >= 2
            await until(written, "the UPS receives the command and the setting")
            assert ups.sets[:2] == [bytes.fromhex("18 01"), bytes.fromhex("11 19")]

            async def low25():
                rc, out, _ = await upsc(dirs, "battery.charge.low")
                return rc == 0 and out.strip() == "25"
            await until(low25, "upsc reads the new battery.charge.low back")

            bus.unplug(ups)

            async def stale():
                rc, _, err = await upsc(dirs, "ups.status")
                return rc != 0 and "Data stale" in err
            await until(stale, "upsc reports stale data after the unplug")

            ups.set_report("0c 5a 10 02")  # back at 90 %
            bus.plug(ups, address=11)

            async def back():
                rc, out, _ = await upsc(dirs)
                return rc == 0 and "battery.charge: 90" in out and out
            dump = await until(back, "upsc shows the replugged UPS")
            assert "ups.status: OL" in dump
            assert proc.driver.info.device == "011"
        finally:
            upsd.terminate()
            await upsd.wait()
            proc._stop()
            await asyncio.wait_for(driver, GUARD)

    try:
        asyncio.run(go())
    finally:
        dirs.cleanup()
