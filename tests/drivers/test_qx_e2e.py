"""nutdrv_qx end to end: `nutapp nutdrv_qx` on a simulated serial UPS,
served by an upsd and read with Debian's upsc / upscmd.

The same simulated unit is also driven by Debian's own nutdrv_qx 2.8.0,
and both drivers must show NUT clients the same values.
"""

import os

import pytest

from megatec_sim import MegatecSim
from nut_stack import NUT_LIB, Stack, needs_nut_clients

pytestmark = needs_nut_clients

UPS_CONF = """\
[myups]
  driver = nutdrv_qx
  port = {port}
  pollinterval = 1
  pollfreq = 1
  protocol = megatec
  runtimecal = 480,100,960,50
  chargetime = 28800
  idleload = 5
"""

# What only says which program produced the data.
DRIVER_IDENTITY = ("driver.version", "driver.version.internal", "driver.version.data",
                   "driver.version.usb")


@pytest.fixture
def stack():
    def conf(s):
        s.sim = MegatecSim(os.path.join(s.top, "ttyUPS"), owner=s.owner)
        return UPS_CONF.format(port=s.sim.link_path)

    s = Stack(conf)
    yield s
    s.close()


def status_is(stack, want):
    return lambda: stack.upsc("ups.status") == want


def test_upsc_reads_the_nutapp_driver_through_nutapp_upsd(stack):
    stack.nutapp("nutdrv_qx", "-a", "myups", "-F")
    stack.nutapp("upsd", "-F")
    stack.wait_for("ups.status OL", status_is(stack, "OL"))
    values = stack.snapshot("battery.runtime")
    assert values["battery.runtime"] == "9600"
    assert values["device.mfr"] == "TS -222  240711"
    assert values["driver.name"] == "nutdrv_qx"

    # An instant command travels upsd -> driver -> serial line.
    stack.sim.set(received=[])
    assert stack.upscmd("test.battery.start", "240") == "OK"
    stack.wait_for("T04 on the line", lambda: "T04" in stack.sim.commands())

    # The power fails and the battery runs low.
    stack.sim.set(q1="(000.0 128.0 120.0 035 60.0 22.1 29.0 11001001")
    stack.wait_for("ups.status OB LB", status_is(stack, "OB LB"))

    # The cable is pulled: clients see stale data, then the data come back.
    stack.sim.unplug()
    stack.wait_for("stale data", lambda: "stale" in stack.upsc("ups.status").lower())
    stack.sim.plug()
    stack.wait_for("ups.status OB LB after replug", status_is(stack, "OB LB"))


@pytest.mark.skipif(not os.path.exists(os.path.join(NUT_LIB, "nutdrv_qx")),
                    reason="Debian's nut-server drivers are not installed")
def test_same_values_as_debian_nutdrv_qx(stack):
    upsd = [os.path.join(NUT_LIB, "upsd"), "-F", "-u", "root"]

    theirs_drv = stack.start(os.path.join(NUT_LIB, "nutdrv_qx"), "-a", "myups", "-F",
                             "-u", "root")
    theirs_upsd = stack.start(*upsd)
    theirs = stack.snapshot("battery.runtime")
    stack.sim.set(received=[])
    assert stack.upscmd("shutdown.return") == "OK"
    stack.wait_for("their shutdown string", lambda: [c for c in stack.sim.commands()
                                                     if c != "Q1"])
    their_sent = [c for c in stack.sim.commands() if c != "Q1"]
    stack.stop(theirs_upsd)
    stack.stop(theirs_drv)

    stack.nutapp("nutdrv_qx", "-a", "myups", "-F")
    stack.start(*upsd)  # Debian's upsd on our driver socket
    ours = stack.snapshot("battery.runtime")
    stack.sim.set(received=[])
    assert stack.upscmd("shutdown.return") == "OK"
    stack.wait_for("our shutdown string", lambda: [c for c in stack.sim.commands()
                                                   if c != "Q1"])
    our_sent = [c for c in stack.sim.commands() if c != "Q1"]

    for key in DRIVER_IDENTITY:
        theirs.pop(key, None)
        ours.pop(key, None)
    assert ours == theirs
    assert our_sent == their_sent == ["S.5R0003"]
