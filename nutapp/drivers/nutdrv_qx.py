"""nutdrv_qx / blazer_ser: Megatec/Q1 UPSes on a serial port.

The protocol itself (replies, status bits, battery guesswork, command
strings) is in `qx_protocol`; this module is the serial adapter around
it: 2400 baud 8N1, DTR set and RTS cleared unless `cablepower` says
otherwise, one query at a time, a reply line ending in CR within a
second.

Every poll sends Q1, which carries all the changing values, and retries
a few times when the answer is missing or garbled; when none of the tries
gives a valid reply the poll raises `CommError` and the framework marks
the data stale and reopens the port (which also covers a USB-serial
adapter that was pulled out). F (ratings) and I (vendor) are read once
when the port is opened.

Options are NUT's: port, cablepower, ondelay, offdelay, norating,
novendor, ignoresab, protocol (only "megatec"), runtimecal, chargetime,
idleload, battery_voltage_reports_one_pack, pollfreq (accepted; Q1 is
the only query a poll needs, so there is nothing to spread out).

Where NUT's two drivers differ, each name behaves like its original.
Under blazer_ser, `ondelay` and the `test.battery.start` parameter are in
minutes, ups.delay.* are read-only, battery.voltage is always scaled by
the number of packs, and a runtimecal estimate starts from a nominal to
1.15 x nominal voltage window and ignores the voltage afterwards. Under
nutdrv_qx they are seconds, writable, scaled only with
`battery_voltage_reports_one_pack`, and a low voltage pulls the estimate
down. The charge guess always uses the scaled voltage, which is what NUT
documents as the intent (its nutdrv_qx compares the unscaled one).
"""

import asyncio
import time

from nutapp.drivers import qx_protocol as qx
from nutapp.drivers.base import (
    CommError,
    Driver,
    DriverError,
    STAT_FAILED,
    STAT_HANDLED,
    STAT_INVALID,
    STAT_UNKNOWN,
)

try:
    import serial
except ImportError:  # pragma: no cover - pyserial is a dependency
    serial = None

try:
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - not a POSIX system
    _TermiosError = OSError

# What a port that went away raises: pyserial's own error, the OS error
# behind it, or termios.error (which is neither) from a flush.
PORT_ERRORS = (OSError, _TermiosError) + ((serial.SerialException,) if serial else ())

# How many times a query is tried before the UPS counts as not answering.
MAXTRIES = 3

# DTR and RTS levels for each `cablepower` value; some cables draw their
# power from these lines.
CABLEPOWER = {
    "normal": (True, False),
    "reverse": (False, True),
    "both": (True, True),
    "none": (False, False),
}

FLAGS = ("norating", "novendor", "ignoresab", "battery_voltage_reports_one_pack")


class SerialLink:
    """One Megatec serial line: send a command, read one CR-terminated reply."""

    #: Seconds to wait for a reply (NUT's drivers wait one second).
    timeout = 1.0
    #: Seconds to let a cable powered from DTR/RTS settle after opening.
    settle = 1.1

    def __init__(self, path, cablepower="normal"):
        self.path = path
        self.dtr, self.rts = CABLEPOWER[cablepower]
        self.port = None

    def open(self):
        if serial is None:
            raise DriverError("pyserial is not installed")
        port = serial.Serial()
        port.port = self.path
        port.baudrate = 2400
        port.bytesize = serial.EIGHTBITS
        port.parity = serial.PARITY_NONE
        port.stopbits = serial.STOPBITS_ONE
        port.timeout = self.timeout
        port.write_timeout = self.timeout
        port.exclusive = True  # a lock, as NUT takes one on its ports
        # Set before opening, pyserial applies the lines as it opens the
        # port (and, like NUT, shrugs off a port that has none, e.g. a pty).
        port.dtr = self.dtr
        port.rts = self.rts
        try:
            port.open()
        except PORT_ERRORS as e:
            raise CommError("cannot open %s: %s" % (self.path, _reason(e)))
        self.port = port
        time.sleep(self.settle)

    def transact(self, command):
        """Send `command` (text); return the raw reply, b"" if none came."""
        if self.port is None:
            raise CommError("%s is not open" % self.path)
        try:
            self.port.reset_input_buffer()
            self.port.write(command.encode())
            self.port.flush()
            return self.port.read_until(b"\r", 128)
        except PORT_ERRORS as e:
            raise CommError("%s: %s" % (self.path, _reason(e)))

    def close(self):
        port, self.port = self.port, None
        if port is not None:
            try:
                port.dtr = False
            except PORT_ERRORS + (ValueError,):
                pass
            try:
                port.close()
            except PORT_ERRORS:
                pass


def _reason(e):
    text = str(e)
    return text or e.__class__.__name__


class NutdrvQx(Driver):
    name = "nutdrv_qx"
    version = "0.1"
    options_help = {
        "cablepower": "DTR/RTS levels: normal (DTR on), reverse, both, none",
        "ondelay": "delay before the UPS switches the load back on (seconds; "
                   "minutes for blazer_ser)",
        "offdelay": "delay before the UPS switches the load off (seconds)",
        "norating": "flag: do not ask for ratings (F)",
        "novendor": "flag: do not ask for vendor information (I)",
        "ignoresab": "flag: ignore the 'shutdown active' bit",
        "protocol": "protocol to use; only 'megatec' is implemented",
        "runtimecal": "runtime,load,runtime,load for the runtime estimate",
        "chargetime": "seconds to recharge an empty battery (with runtimecal)",
        "idleload": "minimum load in percent for the estimate (with runtimecal)",
        "battery_voltage_reports_one_pack": "flag: scale battery.voltage by battery.packs",
        "pollfreq": "accepted for compatibility; every poll reads Q1",
    }

    link_class = SerialLink

    def __init__(self, upsname, options, dstate):
        Driver.__init__(self, upsname, options, dstate)
        self.blazer = self.name == "blazer_ser" or options.get("driver") == "blazer_ser"
        if self.blazer:
            self.name = "blazer_ser"  # driver.name, whichever class was registered
        self.link = None
        self._lock = asyncio.Lock()
        self._config = None
        self._packs = None
        self._limits = (None, None)
        self._estimator = None
        self._last_step = None

    # -- configuration -------------------------------------------------
    def _read_options(self):
        opts = self.options
        port = opts.get("port")
        if not port:
            raise DriverError("no port given (ups.conf: port = /dev/ttyS0)")
        cable = opts.get("cablepower", "normal").lower()
        if cable not in CABLEPOWER:
            raise DriverError("cablepower %r: use one of %s"
                              % (cable, ", ".join(sorted(CABLEPOWER))))
        protocol = opts.get("protocol")
        if protocol and protocol.lower() != "megatec":
            raise DriverError("protocol %r is not implemented (only megatec)" % protocol)

        if self.blazer:
            ondelay = _number_option(opts, "ondelay", 3, 0, 9999) * 60
        else:
            ondelay = _number_option(opts, "ondelay", qx.DEFAULT_ONDELAY, *qx.ONDELAY_RANGE)
        offdelay = _number_option(opts, "offdelay", qx.DEFAULT_OFFDELAY, *qx.OFFDELAY_RANGE)

        cal = None
        if opts.get("runtimecal"):
            try:
                cal = qx.RuntimeCal(opts["runtimecal"])
            except ValueError as e:
                raise DriverError(str(e))
        return {
            "port": port,
            "cablepower": cable,
            "ondelay": qx.truncate_delay("ups.delay.start", ondelay),
            "offdelay": qx.truncate_delay("ups.delay.shutdown", offdelay),
            "runtimecal": cal,
            "chargetime": _number_option(opts, "chargetime", 43200, 1, None),
            "idleload": _number_option(opts, "idleload", 10, 1, 100),
            "flags": set(f for f in FLAGS if _flag(opts, f)),
        }

    # -- Driver interface ----------------------------------------------
    async def open(self):
        if self._config is None:
            self._config = self._read_options()
        cfg = self._config
        link = self.link_class(cfg["port"], cfg["cablepower"])
        await asyncio.to_thread(link.open)
        self.link = link
        try:
            reply = await self._query_q1()
            if "norating" not in cfg["flags"]:
                await self._read_static(qx.RATINGS, qx.parse_ratings)
            if "novendor" not in cfg["flags"]:
                await self._read_static(qx.VENDOR, self._vendor_values)
        except BaseException:
            await self.close()
            raise

        ds = self.dstate
        if not self.blazer:
            ds.setinfo("driver.version.data", "Megatec")
        self._init_battery(reply)
        self._init_delays()
        for cmd in qx.COMMANDS:
            ds.addcmd(cmd)
        self._apply(reply)

    async def update(self):
        reply = await self._query_q1()
        self._apply(reply)

    async def instcmd(self, cmd, param=None):
        cfg = self._config
        try:
            text = qx.command_text(
                cmd,
                param,
                offdelay=_int(self.dstate.getinfo("ups.delay.shutdown"), cfg["offdelay"]),
                ondelay=_int(self.dstate.getinfo("ups.delay.start"), cfg["ondelay"]),
                test_minutes=self.blazer,
            )
        except KeyError:
            return STAT_UNKNOWN
        except ValueError:
            return STAT_INVALID
        try:
            raw = await self._transact(text)
        except CommError:
            return STAT_FAILED
        try:
            reply = raw.decode("ascii", "replace")
        except Exception:
            return STAT_FAILED
        if not qx.command_accepted(reply):
            return STAT_FAILED
        self.wake()  # read the status soon: a test or shutdown changes it
        return STAT_HANDLED

    async def setvar(self, var, value):
        if self.blazer or var not in ("ups.delay.start", "ups.delay.shutdown"):
            return STAT_UNKNOWN
        try:
            seconds = int(value)
            seconds = qx.truncate_delay(var, seconds)
        except ValueError:
            return STAT_INVALID
        self.dstate.setinfo(var, str(seconds))
        return STAT_HANDLED

    async def close(self):
        link, self.link = self.link, None
        if link is not None:
            await asyncio.to_thread(link.close)

    # -- talking to the UPS ----------------------------------------------
    async def _transact(self, command):
        if self.link is None:
            raise CommError("port is not open")
        async with self._lock:
            return await asyncio.to_thread(self.link.transact, command)

    async def _query(self, command, parse):
        """Send `command` until a reply parses; CommError after MAXTRIES."""
        problem = "no reply"
        for _ in range(MAXTRIES):
            raw = await self._transact(command)
            if not raw:
                problem = "no reply"
                continue
            try:
                return parse(qx.decode(raw))
            except qx.QxError as e:
                problem = str(e)
        raise CommError("%s: %s to %s" % (self._config["port"], problem,
                                          command.rstrip("\r")))

    async def _query_q1(self):
        return await self._query(qx.Q1, qx.parse_q1)

    async def _read_static(self, command, parse):
        try:
            values = await self._query(command, parse)
        except CommError:
            # Many units do not implement F or I; the data is optional.
            return
        for name, value in values:
            self.dstate.setinfo(name, value)

    def _vendor_values(self, line):
        values = qx.parse_vendor(line)
        if self.blazer:
            # blazer_ser published the old names next to the device.* ones.
            old = {"device.mfr": "ups.mfr", "device.model": "ups.model"}
            values = values + [(old[n], v) for n, v in values if n in old]
        return values

    # -- static data -----------------------------------------------------
    def _init_battery(self, reply):
        ds = self.dstate
        nominal = _float(ds.getinfo("battery.voltage.nominal"))
        low = _float(ds.getinfo("battery.voltage.low"))
        high = _float(ds.getinfo("battery.voltage.high"))
        if nominal and (low is None or high is None):
            low, high = qx.guess_voltage_limits(nominal)
            ds.setinfo("battery.voltage.low", "%.2f" % low)
            ds.setinfo("battery.voltage.high", "%.2f" % high)
        self._limits = (low, high)

        packs = _float(ds.getinfo("battery.packs"))  # override.battery.packs
        if packs is None:
            packs = self._packs or qx.detect_packs(reply.get("battery.voltage"), nominal)
        self._packs = packs or 1.0

        cfg = self._config
        # After a reconnect the bookkeeping carries on where it was: the
        # battery went on charging or discharging while the cable was out.
        if cfg["runtimecal"] is not None and self._estimator is None:
            limits = self._limits
            if self.blazer and nominal:
                # blazer starts its estimate from a narrower window.
                limits = (nominal, 1.15 * nominal)
            volt = self._scaled_voltage(reply)
            charge = None if volt is None else qx.charge_from_voltage(volt, *limits)
            if charge is None:
                raise DriverError("runtimecal: initial battery charge undetermined "
                                  "(need battery.voltage and its nominal, low or high)")
            # NUT starts from the charge as published, in whole percent.
            self._estimator = qx.RuntimeEstimator(
                cfg["runtimecal"], float("%.0f" % charge), cfg["chargetime"], cfg["idleload"])
            self._last_step = time.monotonic()

    def _init_delays(self):
        ds = self.dstate
        cfg = self._config
        if ds.getinfo("ups.delay.start") is None:
            ds.setinfo("ups.delay.start", str(cfg["ondelay"]))
        if ds.getinfo("ups.delay.shutdown") is None:
            ds.setinfo("ups.delay.shutdown", str(cfg["offdelay"]))
        if not self.blazer:
            for var, (lo, hi) in (("ups.delay.start", qx.ONDELAY_RANGE),
                                  ("ups.delay.shutdown", qx.OFFDELAY_RANGE)):
                ds.setflags(var, "RW", "NUMBER")
                ds.addrange(var, lo, hi)

    # -- one Q1 reply into the state -----------------------------------------
    def _scaled_voltage(self, reply):
        volt = reply.get("battery.voltage")
        return None if volt is None else volt * self._packs

    def _voltage_charge(self, reply):
        volt = self._scaled_voltage(reply)
        if volt is None:
            return None
        low, high = self._limits
        return qx.charge_from_voltage(volt, low, high)

    def _apply(self, reply):
        ds = self.dstate
        scale = self.blazer or "battery_voltage_reports_one_pack" in self._config["flags"]
        for name, value in reply.values:
            if name == "battery.voltage" and scale and self._packs != 1:
                value = "%.2f" % self._scaled_voltage(reply)
            ds.setinfo(name, value)

        status = qx.interpret_bits(
            reply.bits,
            reply.get("input.voltage"),
            reply.get("output.voltage"),
            ignoresab="ignoresab" in self._config["flags"],
        )
        ds.setinfo("ups.type", status.ups_type)
        ds.setinfo("ups.beeper.status", status.beeper)
        self._apply_battery(reply, "OL" in status.words)

        ds.alarm_init()
        for text in status.alarms:
            ds.alarm_set(text)
        ds.alarm_commit()
        ds.status_init()
        for word in status.words:
            ds.status_set(word)
        ds.status_commit()
        ds.dataok()

    def _apply_battery(self, reply, online):
        ds = self.dstate
        charge = self._voltage_charge(reply)
        if self._estimator is None:
            if charge is not None:
                ds.setinfo("battery.charge", "%.0f" % charge)
            return
        now = time.monotonic()
        elapsed, self._last_step = now - self._last_step, now
        # nutdrv_qx lets a low battery voltage pull the estimate down; blazer
        # trusts the bookkeeping alone.
        charge, runtime = self._estimator.step(
            online, elapsed, reply.get("ups.load"), None if self.blazer else charge)
        ds.setinfo("battery.charge", "%.0f" % charge)
        ds.setinfo("battery.runtime", "%.0f" % runtime)


class BlazerSer(NutdrvQx):
    """The same protocol under NUT's older driver name and conventions."""

    name = "blazer_ser"


def _flag(options, name):
    value = options.get(name)
    if value is None:
        return False
    return str(value).lower() not in ("no", "false", "0", "off")


def _number_option(options, name, default, lo, hi):
    text = options.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise DriverError("%s = %r is not a number" % (name, text))
    if value < lo or (hi is not None and value > hi):
        raise DriverError("%s = %s out of range [%s..%s]" % (name, text, lo, hi or ""))
    return value


def _float(text):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _int(text, default):
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return default
