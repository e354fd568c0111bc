"""nutdrv_qx end to end: `nutapp nutdrv_qx` on a simulated serial UPS,
served by an upsd and read with Debian's upsc / upscmd.

The same simulated unit is also driven by Debian's own nutdrv_qx and
blazer_ser (NUT 2.8.0), and ours must show NUT clients the same values.
"""

import os

import pytest

from megatec_sim import MegatecSim
from nut_stack import NUT_LIB, Stack, needs_nut_clients

pytestmark = needs_nut_clients

UPS_CONF = """\
[myups]
  driver = {driver}
  port = {port}
  pollinterval = 1{extra}
  protocol = megatec
  runtimecal = 480,100,960,50
  chargetime = 28800
  idleload = 5
"""

# What only says which program produced the data.
DRIVER_IDENTITY = ("driver.version", "driver.version.internal", "driver.version.data",
                   "driver.version.usb")


def make_stack(driver="nutdrv_qx"):
    def conf(s):
        s.sim = MegatecSim(os.path.join(s.top, "ttyUPS"), owner=s.owner)
        # blazer_ser knows no pollfreq (NUT's drivers refuse unknown options).
        extra = "\n  pollfreq = 1" if driver == "nutdrv_qx" else ""
        return UPS_CONF.format(driver=driver, port=s.sim.link_path, extra=extra)

    return Stack(conf)


@pytest.fixture
def stack():
    s = make_stack()
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


def run_and_read(stack, driver_argv, upsd_argv):
    """Start a driver and upsd, read everything, send shutdown.return;
    return (variables, what reached the serial line), then stop both."""
    drv = stack.start(*driver_argv)
    upsd = stack.start(*upsd_argv)
    values = stack.snapshot("battery.runtime")
    stack.sim.set(received=[])
    assert stack.upscmd("shutdown.return") == "OK"
    sent = stack.wait_for("a shutdown string", lambda: [c for c in stack.sim.commands()
                                                        if c != "Q1"])
    stack.stop(upsd)
    stack.stop(drv)
    for key in DRIVER_IDENTITY:
        values.pop(key, None)
    return values, sent


@pytest.mark.parametrize("driver", ["nutdrv_qx", "blazer_ser"])
@pytest.mark.parametrize("battery", ["27.4", "25.0"])
def test_same_values_as_debians_driver(driver, battery):
    debian = os.path.join(NUT_LIB, driver)
    if not os.path.exists(debian):
        pytest.skip("Debian's nut-server drivers are not installed")
    upsd = (os.path.join(NUT_LIB, "upsd"), "-F", "-u", "root")
    stack = make_stack(driver)
    try:
        # The dump's battery voltage (full), and a partly charged battery
        # where the two drivers' charge guesses differ.
        stack.sim.set(q1=stack.sim.q1.replace(" 27.4 ", " %s " % battery))
        theirs, their_sent = run_and_read(stack, (debian, "-a", "myups", "-F", "-u", "root"),
                                          upsd)
        # Our driver, still behind Debian's upsd.
        ours, our_sent = run_and_read(
            stack, (stack.python, "-m", "nutapp", driver, "-a", "myups", "-F"), upsd)
    finally:
        stack.close()

    # On line the estimate creeps up between readings: allow a few seconds' worth.
    their_runtime = float(theirs.pop("battery.runtime"))
    our_runtime = float(ours.pop("battery.runtime"))
    assert abs(our_runtime - their_runtime) <= 0.01 * their_runtime
    assert ours == theirs
    assert our_sent == their_sent == ["S.5R0003"]


def test_kill_power_uses_the_configured_delays():
    # `nutapp nutdrv_qx -a myups -k`, as the shutdown scripts run it.
    def conf(s):
        s.sim = MegatecSim(os.path.join(s.top, "ttyUPS"), owner=s.owner)
        return ("[myups]\n  driver = nutdrv_qx\n  port = %s\n  ondelay = 300\n"
                "  offdelay = 120\n" % s.sim.link_path)

    stack = Stack(conf)
    try:
        proc = stack.nutapp("nutdrv_qx", "-a", "myups", "-k")
        assert proc.wait(60) == 0, stack.logs()
        sent = [c for c in stack.sim.commands() if c not in ("Q1", "F", "I")]
    finally:
        stack.close()
    assert sent == ["S02R0005"]
