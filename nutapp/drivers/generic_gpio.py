"""generic_gpio: a UPS that signals through GPIO lines, such as a Pi UPS HAT.

NUT's generic_gpio reads the lines named in its `rules` option and turns
them into ups.status words (see `gpio_rules`). This driver does the same
through gpiozero, and can also read the I2C fuel gauge that many HATs
carry (battery.voltage, battery.charge; LB when the charge or voltage
falls below battery.charge.low / battery.voltage.low).

ups.conf options:

    port = gpiochip0     NUT's way to name the GPIO chip ("auto": let
                         gpiozero choose); `gpio_chip = N` says the same
    rules = "..."        NUT's rules; required unless `hat` gives them
    hat = x728|ups-lite  a preset from `hats` (rules, gauge, thresholds)
    pull = up|down|none  bias for the lines (default none, lines as wired)
    mfr, model           device.mfr / device.model, as in NUT
    fuel_gauge = max1704x|none, i2c_bus = 1, i2c_address = 0x36

Line numbers are offsets on the chip; on a Raspberry Pi's header chip
they are the BCM GPIO numbers. gpiozero chooses its pin library itself
(lgpio on a Pi 5, where the header lines sit on gpiochip4 with older
kernels and gpiochip0 with newer ones); `GPIOZERO_PIN_FACTORY=lgpio` or
`=rpigpio` in the environment forces one, and then `port`/`gpio_chip`
are left to that library. An explicit chip otherwise opens gpiozero's
lgpio factory on it, which needs python3-lgpio.

A change on any line wakes the driver at once, so ups.status follows a
power cut without waiting for the next poll.
"""

import asyncio
import os

from nutapp.drivers import gpio_rules, hats
from nutapp.drivers.base import CommError, Driver, DriverError

I2C_SLAVE = 0x0703  # ioctl: address the following reads/writes to a client


class LinuxSys:
    """The system calls an I2C client device needs (tests swap this edge)."""

    def open(self, path):
        return os.open(path, os.O_RDWR)

    def ioctl(self, fd, request, arg):
        import fcntl

        return fcntl.ioctl(fd, request, arg)

    def write(self, fd, data):
        return os.write(fd, data)

    def read(self, fd, n):
        return os.read(fd, n)

    def close(self, fd):
        os.close(fd)


class I2CDevice:
    """One chip on a Linux I2C bus (/dev/i2c-N), read register by register."""

    def __init__(self, bus, address, sys=None):
        self.path = "/dev/i2c-%d" % bus
        self.address = address
        self.sys = sys or LinuxSys()
        self.fd = None

    def open(self):
        try:
            fd = self.sys.open(self.path)
        except OSError as e:
            raise DriverError("cannot open %s (is I2C enabled? dtparam=i2c_arm=on): %s"
                              % (self.path, e.strerror or e))
        try:
            self.sys.ioctl(fd, I2C_SLAVE, self.address)
        except OSError as e:
            self.sys.close(fd)
            raise DriverError("%s: cannot address 0x%02x: %s"
                              % (self.path, self.address, e.strerror or e))
        self.fd = fd

    def read_word(self, register):
        """The big-endian word at `register`; CommError if the chip is silent."""
        try:
            self.sys.write(self.fd, bytes([register]))
            data = self.sys.read(self.fd, 2)
            return hats.word(data)
        except (OSError, ValueError) as e:
            raise CommError("%s 0x%02x register 0x%02x: %s"
                            % (self.path, self.address, register, e))

    def close(self):
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                self.sys.close(fd)
            except OSError:
                pass


class GenericGpio(Driver):
    name = "generic_gpio"
    version = "0.1"
    options_help = {
        "rules": "line rules, e.g. OL=^0;OB=0;LB=3; (^ not, & and, | or)",
        "hat": "a known UPS HAT: %s" % ", ".join(sorted(hats.PRESETS)),
        "gpio_chip": "GPIO chip number or name (else port)",
        "pull": "line bias: up, down or none",
        "mfr": "manufacturer (device.mfr)",
        "model": "model (device.model)",
        "fuel_gauge": "I2C fuel gauge: max1704x or none",
        "i2c_bus": "I2C bus number of the fuel gauge",
        "i2c_address": "I2C address of the fuel gauge",
    }

    #: The I2C system-call edge; tests replace it with a fake chip.
    i2c_sys = None

    def __init__(self, upsname, options, dstate):
        Driver.__init__(self, upsname, options, dstate)
        self.config = None
        self.inputs = {}
        self.gauge = None
        self._loop = None
        self._factory = None  # an lgpio factory we opened, kept across reopens

    # -- configuration -------------------------------------------------
    def _read_config(self):
        opts = dict(self.options)
        preset = {}
        if opts.get("hat"):
            try:
                preset = hats.preset(opts["hat"])
            except KeyError:
                raise DriverError("hat %r is not known (known: %s)"
                                  % (opts["hat"], ", ".join(sorted(hats.PRESETS))))

        def get(key, default=None):
            value = opts.get(key)
            return value if value not in (None, "") else preset.get(key, default)

        text = get("rules")
        if not text:
            raise DriverError("no rules given (ups.conf: rules = \"OL=^0;OB=0;LB=3;\", "
                              "or hat = %s)" % " | ".join(sorted(hats.PRESETS)))
        try:
            rules = gpio_rules.parse(text)
        except gpio_rules.RulesError as e:
            raise DriverError(str(e))

        pull = (get("pull") or "none").lower()
        if pull not in ("up", "down", "none", "off"):
            raise DriverError("pull %r: use up, down or none" % pull)

        gauge = (get("fuel_gauge") or "none").lower()
        if gauge not in ("max1704x", "max17040", "max17043", "max17048", "none"):
            raise DriverError("fuel_gauge %r: use max1704x or none" % gauge)
        return {
            "rules": rules,
            "chip": _chip_number(opts.get("gpio_chip") or opts.get("port")),
            "pull": {"up": True, "down": False}.get(pull),
            "mfr": get("mfr"),
            "model": get("model"),
            "gauge": None if gauge == "none" else gauge,
            "i2c_bus": _int_option("i2c_bus", get("i2c_bus", "1")),
            "i2c_address": _int_option("i2c_address", get("i2c_address", "0x36")),
            "charge_low": preset.get("battery.charge.low"),
            "voltage_low": preset.get("battery.voltage.low"),
        }

    # -- Driver interface ------------------------------------------------
    async def open(self):
        if self.config is None:
            self.config = self._read_config()
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._open_lines(cfg)
        try:
            if cfg["gauge"]:
                gauge = I2CDevice(cfg["i2c_bus"], cfg["i2c_address"], self.i2c_sys)
                await asyncio.to_thread(gauge.open)
                self.gauge = gauge
        except BaseException:
            await self.close()
            raise

        ds = self.dstate
        if cfg["mfr"]:
            ds.setinfo("device.mfr", cfg["mfr"])
        if cfg["model"]:
            ds.setinfo("device.model", cfg["model"])
        for var, key in (("battery.charge.low", "charge_low"),
                         ("battery.voltage.low", "voltage_low")):
            if cfg[key] is not None:
                ds.set_default(var, cfg[key])

    async def update(self):
        ds = self.dstate
        levels = self._read_lines()
        has_gauge = self.gauge is not None
        charge_low = _float(ds.getinfo("battery.charge.low"))
        state = gpio_rules.ups_state(
            self.config["rules"], levels,
            None if has_gauge else ds.getinfo("battery.charge.low"))
        words = list(state.words)

        if has_gauge:
            vcell = await asyncio.to_thread(self.gauge.read_word, hats.REG_VCELL)
            soc = await asyncio.to_thread(self.gauge.read_word, hats.REG_SOC)
            voltage, charge = hats.battery_values(vcell, soc)
            ds.setinfo("battery.voltage", voltage)
            ds.setinfo("battery.charge", charge)
            low = hats.is_low(hats.soc_percent(soc), hats.vcell_volts(vcell), charge_low,
                              _float(ds.getinfo("battery.voltage.low")))
            if low and "LB" not in words:
                words.append("LB")
        elif state.charge is None:
            ds.delinfo("battery.charge")
        elif state.charge is not False:
            ds.setinfo("battery.charge", state.charge)

        if state.charger is None:
            ds.delinfo("battery.charger.status")
        else:
            ds.setinfo("battery.charger.status", state.charger)
        ds.status_init()
        for w in words:
            ds.status_set(w)
        ds.status_commit()
        ds.dataok()

    async def close(self):
        inputs, self.inputs = self.inputs, {}
        for dev in inputs.values():
            try:
                dev.close()
            except Exception:  # a pin library that is already gone
                pass
        gauge, self.gauge = self.gauge, None
        if gauge is not None:
            gauge.close()

    # -- GPIO ------------------------------------------------------------
    def _open_lines(self, cfg):
        try:
            from gpiozero import DigitalInputDevice
            from gpiozero.exc import BadPinFactory, GPIOZeroError, PinFixedPull
        except ImportError:
            raise DriverError("gpiozero is not installed")
        if self._factory is None:
            self._factory = self._pin_factory(cfg["chip"])
        factory = self._factory
        kwargs = {"pull_up": cfg["pull"], "pin_factory": factory}
        if cfg["pull"] is None:
            kwargs["active_state"] = True
        try:
            for line in cfg["rules"].lines():
                try:
                    dev = DigitalInputDevice(line, **kwargs)
                except PinFixedPull:
                    # GPIO2/3 on a Pi carry fixed pull-ups (I2C); gpiozero
                    # wants that said. Levels are read raw either way.
                    dev = DigitalInputDevice(line, pull_up=True, pin_factory=factory)
                dev.when_activated = self._edge
                dev.when_deactivated = self._edge
                self.inputs[line] = dev
        except BadPinFactory:
            raise DriverError("no GPIO library found for gpiozero: install python3-lgpio "
                              "(or set GPIOZERO_PIN_FACTORY)")
        except (GPIOZeroError, OSError) as e:
            for dev in self.inputs.values():
                dev.close()
            self.inputs = {}
            raise DriverError("GPIO line %s: %s" % (line, e))

    def _pin_factory(self, chip):
        """None (gpiozero's own choice) unless a chip was named and nothing
        else chose a pin library: then lgpio on that chip."""
        from gpiozero import Device

        if chip is None or os.environ.get("GPIOZERO_PIN_FACTORY") or Device.pin_factory:
            return None
        try:
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory(chip=chip)
        except ImportError:
            raise DriverError("gpiochip%d needs the lgpio library (python3-lgpio)" % chip)
        except Exception as e:  # lgpio.error and friends: no such chip, no access
            raise DriverError("cannot open gpiochip%d: %s" % (chip, e))

    def _read_lines(self):
        levels = {}
        try:
            for line, dev in self.inputs.items():
                levels[line] = dev.pin.state
        except Exception as e:
            raise CommError("reading GPIO line %s: %s" % (line, e))
        return levels

    def _edge(self, *_):
        # Called from the pin library's thread (or inline, with mock pins).
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake)


def _chip_number(value):
    """'gpiochip4', '/dev/gpiochip4' or '4' -> 4; 'auto' or nothing -> None."""
    if value is None:
        return None
    text = str(value).strip()
    if text in ("", "auto"):
        return None
    base = text.rsplit("/", 1)[-1]
    if base.startswith("gpiochip"):
        base = base[len("gpiochip"):]
    try:
        return int(base)
    except ValueError:
        raise DriverError("GPIO chip %r: use gpiochipN, /dev/gpiochipN or N" % value)


def _int_option(name, value):
    try:
        return int(str(value), 0)
    except ValueError:
        raise DriverError("%s = %r is not a number" % (name, value))


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
