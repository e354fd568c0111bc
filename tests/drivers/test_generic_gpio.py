"""generic_gpio with gpiozero's mock pins and a fake I2C fuel gauge.

The fakes sit at the hardware edge only: gpiozero's MockFactory stands in
for the GPIO chip, and `FakeI2C` for the kernel's i2c-dev system calls
(open, the I2C_SLAVE ioctl, write of the register number, read of the
two-byte answer) with a MAX17040's register file behind them.
"""

import asyncio
import errno

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from nut_stack import Stack, needs_nut_clients

from nutapp.core.dstate import DriverState
from nutapp.drivers import load_driver_class
from nutapp.drivers.base import CommError, DriverError
from nutapp.drivers.generic_gpio import I2C_SLAVE, GenericGpio, _chip_number

CYBERSHIELD = "OL=^0;OB=0;LB=3;RB=1;DISCHRG=0&^6;BYPASS=6;"


@pytest.fixture
def pins():
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = None


class FakeI2C:
    """i2c-dev as a MAX1704x at `address` on /dev/i2c-<bus> sees it.

    The registers start as a real UPS-Lite MAX17040G read them (i2cdump in
    the davidem/UPS-Lite README): VCELL 0xb520, SOC 0x230f, VERSION 0x0002.
    """

    def __init__(self, bus=1, address=0x36):
        self.path = "/dev/i2c-%d" % bus
        self.address = address
        self.regs = {0x02: 0xB520, 0x04: 0x230F, 0x08: 0x0002, 0x0C: 0x9700}
        self.slave = {}
        self.pointer = None
        self.calls = []
        self.dead = False
        self.next_fd = 10

    def open(self, path):
        self.calls.append(("open", path))
        if path != self.path:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.next_fd += 1
        return self.next_fd

    def ioctl(self, fd, request, arg):
        self.calls.append(("ioctl", request, arg))
        if request != I2C_SLAVE:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        self.slave[fd] = arg
        return 0

    def _check(self, fd):
        if self.dead or self.slave.get(fd) != self.address:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def write(self, fd, data):
        self._check(fd)
        self.pointer = data[0]
        return len(data)

    def read(self, fd, n):
        self._check(fd)
        value = self.regs.get(self.pointer, 0xFFFF)
        return bytes([value >> 8, value & 0xFF])[:n]

    def close(self, fd):
        self.calls.append(("close", fd))

    def set_charge(self, percent, volts):
        self.regs[0x04] = int(percent * 256)
        self.regs[0x02] = int(volts * 1000 / 1.25 * 16)


def make(i2c=None, **options):
    drv = GenericGpio("hat", dict({"port": "gpiochip0"}, **options), DriverState())
    drv.i2c_sys = i2c
    return drv


def run(coro):
    return asyncio.run(coro)


def status(drv):
    return drv.dstate.getinfo("ups.status")


def test_registered():
    assert load_driver_class("generic_gpio") is GenericGpio


def test_rules_drive_ups_status(pins):
    drv = make(rules=CYBERSHIELD, mfr="CyberPower", model="CyberShield CSN27U12V")
    seen = []

    async def go():
        await drv.open()
        for level0, level3, level1, level6 in ((0, 0, 0, 0), (1, 0, 0, 0), (1, 1, 0, 0),
                                               (0, 0, 1, 0), (0, 0, 0, 1)):
            for line, level in ((0, level0), (3, level3), (1, level1), (6, level6)):
                pin = pins.pin(line)
                pin.drive_high() if level else pin.drive_low()
            await drv.update()
            seen.append((status(drv), drv.dstate.getinfo("battery.charger.status")))
        await drv.close()

    run(go())
    assert seen == [
        ("OL", None),
        ("OB DISCHRG", "discharging"),
        ("OB LB DISCHRG", "discharging"),
        ("OL RB", None),
        ("OL BYPASS", None),
    ]
    assert drv.dstate.getinfo("device.mfr") == "CyberPower"
    assert drv.dstate.getinfo("device.model") == "CyberShield CSN27U12V"
    assert drv.inputs == {}  # closed


def test_charge_low_gives_nuts_charge_guess(pins):
    drv = make(rules=CYBERSHIELD)
    drv.dstate.set_default("battery.charge.low", "20")  # default.battery.charge.low

    async def go():
        await drv.open()
        out = []
        for line, level in ((3, 0), (3, 1), (6, 1)):
            pins.pin(line).drive_high() if level else pins.pin(line).drive_low()
            await drv.update()
            out.append(drv.dstate.getinfo("battery.charge"))
        await drv.close()
        return out

    assert run(go()) == ["100", "20", None]


def test_an_edge_wakes_the_poll_loop(pins):
    drv = make(rules="OL=^0;OB=0;")

    async def go():
        await drv.open()
        drv._wakeup.clear()
        pins.pin(0).drive_high()
        await asyncio.sleep(0)  # the wake-up is handed to the loop
        woke = drv._wakeup.is_set()
        drv._wakeup.clear()
        pins.pin(0).drive_high()  # no change, no edge
        await asyncio.sleep(0)
        again = drv._wakeup.is_set()
        await drv.update()
        await drv.close()
        return woke, again

    assert run(go()) == (True, False)
    assert status(drv) == "OB"


def test_pull_option(pins):
    async def go(**opts):
        drv = make(rules="OL=^0;", **opts)
        await drv.open()
        pull = pins.pin(0).pull
        await drv.update()
        result = (pull, status(drv))
        await drv.close()
        return result

    assert run(go()) == ("floating", "OL")
    assert run(go(pull="up")) == ("up", "")      # pulled high, no OL
    assert run(go(pull="down")) == ("down", "OL")
    with pytest.raises(DriverError, match="pull"):
        run(go(pull="sideways"))


@pytest.mark.parametrize("options, message", [
    ({}, "no rules given"),
    ({"rules": "OL=^0;OB=0x;"}, "rules: expected '&', '|' or ';' at position 10"),
    ({"rules": "OL=(0);"}, "unexpected character '('"),
    ({"hat": "x729"}, "hat 'x729' is not known"),
    ({"rules": "OL=0;", "port": "gpiochipX"}, "GPIO chip 'gpiochipX'"),
    ({"rules": "OL=0;", "fuel_gauge": "bq27441"}, "fuel_gauge"),
    ({"rules": "OL=0;", "fuel_gauge": "max1704x", "i2c_address": "sixty"}, "i2c_address"),
    ({"rules": "OL=99;"}, "GPIO line 99"),
])
def test_configuration_errors_are_clear(pins, options, message):
    with pytest.raises(DriverError) as e:
        run(make(**options).open())
    assert message in str(e.value)


def _have_lgpio():
    try:
        import lgpio  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_have_lgpio(), reason="lgpio is installed: GPIO chips can be opened")
@pytest.mark.filterwarnings("ignore::gpiozero.exc.PinFactoryFallback")
@pytest.mark.parametrize("port, message", [
    ("gpiochip0", "gpiochip0 needs the lgpio library (python3-lgpio)"),
    ("auto", "no GPIO library found for gpiozero: install python3-lgpio"),
])
def test_missing_gpio_library_is_a_clear_error(monkeypatch, port, message):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    assert Device.pin_factory is None
    with pytest.raises(DriverError) as e:
        run(make(rules="OL=0;", port=port).open())
    assert message in str(e.value)


def test_chip_names():
    assert _chip_number("gpiochip4") == 4
    assert _chip_number("/dev/gpiochip0") == 0
    assert _chip_number("2") == 2
    assert _chip_number("auto") is None
    assert _chip_number(None) is None


def test_x728_preset_with_fuel_gauge(pins):
    i2c = FakeI2C()
    drv = make(i2c, hat="x728")

    async def go():
        await drv.open()
        out = []
        pins.pin(6).drive_low()      # power good
        i2c.set_charge(87.5, 4.10)
        await drv.update()
        out.append(status(drv))
        pins.pin(6).drive_high()     # adapter pulled
        await drv.update()
        out.append(status(drv))
        i2c.set_charge(19.6, 3.45)   # under the maker's 20 %
        await drv.update()
        out.append(status(drv))
        i2c.set_charge(45, 2.95)     # under the maker's 3.00 V
        await drv.update()
        out.append(status(drv))
        values = {k: drv.dstate.getinfo(k) for k in (
            "battery.voltage", "battery.charge", "battery.charge.low",
            "battery.voltage.low", "device.mfr", "device.model")}
        await drv.close()
        return out, values

    out, values = run(go())
    assert out == ["OL", "OB DISCHRG", "OB DISCHRG LB", "OB DISCHRG LB"]
    assert values == {
        "battery.voltage": "2.95", "battery.charge": "45", "battery.charge.low": "20",
        "battery.voltage.low": "3.00", "device.mfr": "Geekworm", "device.model": "X728"}
    assert ("ioctl", I2C_SLAVE, 0x36) in i2c.calls
    assert i2c.calls[0] == ("open", "/dev/i2c-1")
    assert i2c.calls[-1][0] == "close"


def test_ups_lite_preset_reads_the_real_register_dump(pins):
    i2c = FakeI2C()
    drv = make(i2c, hat="ups-lite")
    drv.dstate.set_default("battery.charge.low", "40")  # ups.conf wins over the preset

    async def go():
        await drv.open()
        pins.pin(4).drive_high()     # adapter plugged in
        await drv.update()
        await drv.close()

    run(go())
    d = drv.dstate
    assert (status(drv), d.getinfo("battery.voltage"), d.getinfo("battery.charge")) == \
        ("OL LB", "3.62", "35")
    assert d.getinfo("battery.charge.low") == "40"


def test_explicit_options_override_the_preset(pins):
    i2c = FakeI2C(bus=3, address=0x32)
    drv = make(i2c, hat="x728", rules="OL=^5;OB=5;", i2c_bus="3", i2c_address="0x32",
               model="X728 v2.3")

    async def go():
        await drv.open()
        pins.pin(5).drive_high()
        await drv.update()
        await drv.close()

    run(go())
    assert status(drv) == "OB"
    assert drv.dstate.getinfo("device.model") == "X728 v2.3"
    assert ("ioctl", I2C_SLAVE, 0x32) in i2c.calls


def test_fuel_gauge_failures(pins):
    # No such bus: I2C not enabled. A configuration problem, not retried.
    with pytest.raises(DriverError, match="dtparam=i2c_arm=on"):
        run(make(FakeI2C(bus=0), hat="x728").open())

    # The chip stops answering: the data go stale, the framework reopens.
    i2c = FakeI2C()
    drv = make(i2c, hat="x728")

    async def go():
        await drv.open()
        await drv.update()
        i2c.dead = True
        with pytest.raises(CommError, match="register 0x02"):
            await drv.update()
        await drv.close()
        i2c.dead = False
        await drv.open()
        await drv.update()
        await drv.close()

    run(go())
    assert drv.dstate.getinfo("battery.charge") == "35"

    # Nothing at that address.
    drv = make(FakeI2C(address=0x55), hat="x728")

    async def nobody():
        await drv.open()
        try:
            await drv.update()
        finally:
            await drv.close()

    with pytest.raises(CommError, match="Remote I/O"):
        run(nobody())


def test_gauge_can_be_turned_off(pins):
    drv = make(FakeI2C(), hat="ups-lite", fuel_gauge="none")

    async def go():
        await drv.open()
        pins.pin(4).drive_low()
        await drv.update()
        await drv.close()

    run(go())
    assert status(drv) == "OB DISCHRG"
    assert drv.dstate.getinfo("battery.voltage") is None
    assert drv.dstate.getinfo("battery.charge") == "100"  # NUT's guess from charge.low


# -- end to end --------------------------------------------------------------
HAT_CONF = """\
[hat]
  driver = generic_gpio
  port = gpiochip0
  rules = "OL=^0;OB=0;LB=3;DISCHRG=0;"
  pull = up
  mfr = CyberPower
  model = "CyberShield CSN27U12V"
  default.battery.charge.low = 20
"""


@needs_nut_clients
def test_upsc_reads_generic_gpio_through_upsd():
    # gpiozero's mock pins, chosen the documented way; pulled up, every
    # line reads high: on battery, battery low.
    stack = Stack(lambda s: HAT_CONF, ups="hat")
    stack.env["GPIOZERO_PIN_FACTORY"] = "mock"
    try:
        stack.nutapp("generic_gpio", "-a", "hat", "-F")
        stack.nutapp("upsd", "-F")
        values = stack.snapshot()
        assert values["ups.status"] == "OB LB DISCHRG"
        assert values["battery.charge"] == "20"
        assert values["battery.charger.status"] == "discharging"
        assert values["device.model"] == "CyberShield CSN27U12V"
        assert values["driver.name"] == "generic_gpio"
        assert values["driver.parameter.rules"] == "OL=^0;OB=0;LB=3;DISCHRG=0;"
    finally:
        stack.close()
