"""From HID values to NUT variables: lookups, conversions and ups.status.

A subdriver's mapping table (see `subdrivers`) has one `Info` per NUT
variable, status bit or instant command, with the HID path it comes from.
A value read at that path goes through the entry's lookup, if any: a
`Table` of value/text pairs, or a `Conv` wrapping a function. Entries named
``BOOL`` feed `StatusBits` instead of a variable; `StatusBits.words`
turns the remembered bits into ups.status words with usbhid-ups's rules:

- ``online`` and ``offline`` are separate bits: a device that says neither
  gets no OL/OB word, unless it is discharging (then OB);
- OL together with DISCHRG is ambiguous. By default it stays OL (a
  calibration, or a UPS that hovers its charge) and a warning is logged,
  throttled by ``onlinedischarge_log_throttle_sec`` and by changes of
  battery.charge below ``onlinedischarge_log_throttle_hovercharge``;
  ``onlinedischarge_onbattery`` makes it OB (CyberPower UT series) and
  ``onlinedischarge_calibration`` makes it CAL (some APC);
- CHRG needs "not fully charged" when the device reports that, else a
  battery.charge strictly between 0 and 100;
- low battery, time limit expired and shutdown imminent all give LB;
  replace battery and no battery give RB; ``lbrb_log_delay_sec`` holds
  LB and RB back while the UPS is online and calibrating.

Pure code: time comes in as an argument, log lines go out in a list.
"""

# Entry flags (usbhid-ups's HU_FLAG_* / HU_TYPE_CMD).
STATIC = 2  # read once at start-up
SEMI_STATIC = 4  # read at start-up and after a setvar/instcmd
ABSENT = 8  # not on the device: a driver-side setting with a default
QUICK = 16  # read on every poll, not only on full updates
CMD = 64  # an instant command
ENUM = 128  # publish the lookup's texts as the variable's enum


class Info:
    """One row of a mapping table."""

    __slots__ = ("var", "rw", "length", "path", "dfl", "flags", "lookup")

    def __init__(self, var, path, dfl=None, flags=0, lookup=None, rw=False, length=0):
        self.var = var
        self.path = path
        self.dfl = dfl  # printf format, command argument or ABSENT default
        self.flags = flags
        self.lookup = lookup
        self.rw = rw
        self.length = length  # STRING length (aux) of a writable variable


def rw(var, path, dfl, flags=0, lookup=None, length=10):
    """A writable string variable, as NUT publishes its settings."""
    return Info(var, path, dfl, flags, lookup, rw=True, length=length)


def cmd(name, path, value):
    return Info(name, path, value, CMD)


def boolean(path, lookup, flags=0):
    return Info("BOOL", path, None, flags, lookup)


class Table:
    """Value/text pairs; the first match wins in both directions."""

    def __init__(self, *pairs):
        self.pairs = pairs

    def to_nut(self, value, ctx):
        v = int(value)
        for hid, text in self.pairs:
            if hid == v:
                return text
        return None

    def from_nut(self, text, ctx):
        for hid, t in self.pairs:
            if t == text:
                return hid
        return None

    def enum_values(self, ctx):
        return [text for hid, text in self.pairs if self.to_nut(hid, ctx) is not None]


class Conv:
    """A conversion function (and optionally its inverse)."""

    def __init__(self, fun, nuf=None):
        self.fun = fun
        self.nuf = nuf

    def to_nut(self, value, ctx):
        return self.fun(value, ctx)

    def from_nut(self, text, ctx):
        if self.nuf is None:
            return None
        return self.nuf(text, ctx)

    def enum_values(self, ctx):
        return []


# -- status bits (usbhid-ups's "online", "dischrg"... strings) -----------------

ONLINE = Table((1, "online"), (0, "offline"))
DISCHARGING = Table((1, "dischrg"), (0, "!dischrg"))
CHARGING = Table((1, "chrg"), (0, "!chrg"))
LOWBATT = Table((1, "lowbatt"), (0, "!lowbatt"))
OVERLOAD = Table((1, "overload"), (0, "!overload"))
REPLACEBATT = Table((1, "replacebatt"), (0, "!replacebatt"))
TRIM = Table((1, "trim"), (0, "!trim"))
BOOST = Table((1, "boost"), (0, "!boost"))
BYPASS_AUTO = Table((1, "bypassauto"), (0, "!bypassauto"))
BYPASS_MANUAL = Table((1, "bypassman"), (0, "!bypassman"))
OFF = Table((0, "off"), (1, "!off"))  # reported as "good": 0 means off
CALIBRATION = Table((1, "cal"), (0, "!cal"))
NOBATTERY = Table((1, "!nobattery"), (0, "nobattery"))  # "battery present"
FANFAIL = Table((1, "fanfail"), (0, "!fanfail"))
SHUTDOWNIMM = Table((1, "shutdownimm"), (0, "!shutdownimm"))
OVERHEAT = Table((1, "overheat"), (0, "!overheat"))
AWAITINGPOWER = Table((1, "awaitingpower"), (0, "!awaitingpower"))
COMMFAULT = Table((1, "commfault"), (0, "!commfault"))
TIMELIMITEXPIRED = Table((1, "timelimitexp"), (0, "!timelimitexp"))
BATTVOLTLO = Table((1, "battvoltlo"), (0, "!battvoltlo"))
BATTVOLTHI = Table((1, "battvolthi"), (0, "!battvolthi"))
CHARGERFAIL = Table((1, "chargerfail"), (0, "!chargerfail"))
FULLYCHARGED = Table((1, "fullycharged"), (0, "notfullycharged"))
DEPLETED = Table((1, "depleted"), (0, "!depleted"))
VRANGE = Table((0, "!vrange"), (1, "vrange"))
FRANGE = Table((0, "!frange"), (1, "frange"))

# -- common value tables ------------------------------------------------------

TEST_WRITE = Table((0, "No test"), (1, "Quick test"), (2, "Deep test"), (3, "Abort test"))
TEST_READ = Table((1, "Done and passed"), (2, "Done and warning"), (3, "Done and error"),
                  (4, "Aborted"), (5, "In progress"), (6, "No test initiated"),
                  (7, "Test scheduled"))
BEEPER = Table((1, "disabled"), (2, "enabled"), (3, "muted"))
YES_NO = Table((0, "no"), (1, "yes"))
ON_OFF = Table((0, "off"), (1, "on"))


def _date_fun(value, ctx):
    # HID PDC ManufacturerDate: (year - 1980) * 512 + month * 32 + day.
    v = int(value)
    if v == 0:
        return "not set"
    return "%04d/%02d/%02d" % (1980 + (v >> 9), (v >> 5) & 0x0F, v & 0x1F)


def _date_nuf(text, ctx):
    try:
        y, m, d = [int(x) for x in text.split("/")]
    except ValueError:
        return None
    if y - 1980 > 127 or m > 12 or d > 31:
        return 0
    return ((y - 1980) << 9) + (m << 5) + d


def _hex_fun(value, ctx):
    return "%08x" % (int(value) & 0xFFFFFFFF)


def _stringid_fun(value, ctx):
    # An index the device cannot resolve gives nothing rather than "".
    return ctx.get_string(int(value)) or None


def _div10_fun(value, ctx):
    return "%0.1f" % (value * 0.1)


def _div100_fun(value, ctx):
    return "%0.1f" % (value * 0.01)


def _kelvin_fun(value, ctx):
    # Some firmware already reports Celsius: only 273..373 is taken as kelvin.
    if 273 <= value <= 373:
        return "%.1f" % (value - 273.15)
    return "%.1f" % value


DATE = Conv(_date_fun, _date_nuf)
HEX = Conv(_hex_fun)
STRINGID = Conv(_stringid_fun)
DIVIDE_BY_10 = Conv(_div10_fun)
DIVIDE_BY_100 = Conv(_div100_fun)
KELVIN_CELSIUS = Conv(_kelvin_fun)


def parse_long(text):
    """C's atol: the leading integer of `text`, 0 if there is none."""
    text = (text or "").strip()
    end = 0
    if text[:1] in ("-", "+"):
        end = 1
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def format_value(fmt, value):
    """Apply a mapping row's printf format; None if it is not one for a number."""
    try:
        return fmt % value
    except (TypeError, ValueError):
        return None


# -- ups.status ---------------------------------------------------------------

_STATUS_NAMES = ("online", "offline", "dischrg", "chrg", "lowbatt", "overload",
                 "replacebatt", "shutdownimm", "trim", "boost", "bypassauto",
                 "bypassman", "ecomode", "essmode", "off", "cal", "overheat",
                 "commfault", "depleted", "timelimitexp", "fullycharged",
                 "notfullycharged", "awaitingpower", "fanfail", "nobattery",
                 "battvoltlo", "battvolthi", "chargerfail", "vrange", "frange")

_ALARMS = (
    ("replacebatt", "Replace battery!"),
    ("shutdownimm", "Shutdown imminent!"),
    ("fanfail", "Fan failure!"),
    ("nobattery", "No battery installed!"),
    ("battvoltlo", "Battery voltage too low!"),
    ("battvolthi", "Battery voltage too high!"),
    ("chargerfail", "Battery charger fail!"),
    ("overheat", "Temperature too high!"),
    ("commfault", "Internal UPS fault!"),
    ("awaitingpower", "Awaiting power!"),
    ("bypassauto", "Automatic bypass mode!"),
    ("bypassman", "Manual bypass mode!"),
)


class StatusOptions:
    """The ups.conf options that change how ups.status is derived."""

    def __init__(self, options=None):
        o = options or {}
        self.onbattery = _flag(o, "onlinedischarge") or _flag(o, "onlinedischarge_onbattery") \
            or _flag(o, "onlinedischarge_battery")
        self.calibration = _flag(o, "onlinedischarge_calibration")
        self.throttle_sec = -2  # -2: not configured (decided at run time)
        if o.get("onlinedischarge_log_throttle_sec") is not None:
            text = o["onlinedischarge_log_throttle_sec"]
            v = parse_long(text)
            if v == 0 and text.strip() != "0":
                v = 30
            self.throttle_sec = -1 if v < 0 else v
        self.hovercharge = 100
        if o.get("onlinedischarge_log_throttle_hovercharge") is not None:
            v = parse_long(o["onlinedischarge_log_throttle_hovercharge"])
            self.hovercharge = v if 1 <= v <= 100 else 100
        self.lbrb_delay = 0
        if o.get("lbrb_log_delay_sec") is not None:
            text = o["lbrb_log_delay_sec"]
            v = parse_long(text)
            self.lbrb_delay = 3 if (v == 0 and text.strip() != "0") or v < 0 else v
        self.lbrb_without_calibrating = _flag(o, "lbrb_log_delay_without_calibrating")


def _flag(options, name):
    return name in options and str(options[name]).lower() not in ("0", "no", "false", "off")


class StatusBits:
    """The status bits a device reported, and ups.status derived from them."""

    def __init__(self, options=None):
        self.opts = options if options is not None else StatusOptions()
        self.bits = set()
        self.calibration_start = 0
        self.ol_dischrg_logged_at = 0
        self.ol_dischrg_logged_charge = -1
        self.lb_since = 0
        self.rb_since = 0

    def process(self, text):
        """Remember one ``online`` / ``!dischrg``... string from a lookup."""
        if text == "online":
            self.process("!offline")
        elif text == "offline":
            self.process("!online")
        if text == "fullycharged":
            self.process("!notfullycharged")
        elif text == "notfullycharged":
            self.process("!fullycharged")
        clear = text.startswith("!")
        name = text[1:] if clear else text
        if name not in _STATUS_NAMES:
            return
        if clear:
            self.bits.discard(name)
        else:
            self.bits.add(name)

    def alarms(self):
        return [text for name, text in _ALARMS if name in self.bits]

    def transfer_reason(self):
        if "vrange" in self.bits:
            return "input voltage out of range"
        if "frange" in self.bits:
            return "input frequency out of range"
        return None

    def words(self, charge, now, log):
        """ups.status words for the current bits.

        `charge` is battery.charge as published (text or None), `now` the
        time in seconds, `log` a list that receives operator messages.
        """
        b = self.bits
        o = self.opts
        out = []

        def add(word):
            if word not in out:
                out.append(word)

        if "cal" in b:
            self._calibrating(now)
            add("CAL")
        if "dischrg" not in b:
            self.ol_dischrg_logged_at = 0
            self.ol_dischrg_logged_charge = -1

        if "offline" in b:
            add("OB")
        if "online" not in b:
            if "offline" in b or "dischrg" in b:
                add("OB")
        elif "dischrg" in b:
            if o.calibration:
                self._calibrating(now)
                add("CAL")
            if o.onbattery:
                add("OB")
            if not o.onbattery and not o.calibration:
                if "cal" not in b:
                    self._warn_online_discharging(charge, now, log)
                add("OL")
        else:
            add("OL")

        calibrating = "CAL" in out
        if "dischrg" in b and "depleted" not in b:
            add("DISCHRG")
        if "chrg" in b:
            if "notfullycharged" in b:
                add("CHRG")
            elif "fullycharged" not in b:
                c = _int(charge)
                if 0 < c < 100:
                    add("CHRG")

        if b & {"lowbatt", "timelimitexp", "shutdownimm"}:
            if self._hold_back(calibrating, "online" in b):
                if not self.lb_since:
                    self.lb_since = now
                elif now - self.lb_since > o.lbrb_delay:
                    add("LB")
            else:
                add("LB")
        else:
            self.lb_since = 0
        if "overload" in b:
            add("OVER")
        if b & {"replacebatt", "nobattery"}:
            if self._hold_back(calibrating, "online" in b) and self.lb_since:
                if not self.rb_since:
                    self.rb_since = now
                elif now - self.rb_since > o.lbrb_delay:
                    add("RB")
            else:
                add("RB")
        else:
            self.rb_since = 0
        if "trim" in b:
            add("TRIM")
        if "boost" in b:
            add("BOOST")
        if b & {"bypassauto", "bypassman"}:
            add("BYPASS")
        if "off" in b:
            add("OFF")
        if not calibrating:
            self.calibration_start = 0
        return out

    def _calibrating(self, now):
        if not self.calibration_start:
            self.calibration_start = now

    def _hold_back(self, calibrating, online):
        o = self.opts
        if o.lbrb_delay < 1 or not online:
            return False
        return calibrating or o.lbrb_without_calibrating

    def _warn_online_discharging(self, charge, now, log):
        o = self.opts
        c = _int(charge)
        say = False
        if charge is not None:
            if c > 0 and c != self.ol_dischrg_logged_charge and c < o.hovercharge:
                say = True
        elif o.throttle_sec == -2:
            o.throttle_sec = 30
        if self.ol_dischrg_logged_at > 0 and o.throttle_sec >= 0:
            if now - self.ol_dischrg_logged_at >= o.throttle_sec:
                say = True
        if not say:
            return
        self.ol_dischrg_logged_at = now or 1
        note = ""
        if c > 0 and c != self.ol_dischrg_logged_charge:
            note = "battery.charge %d, " % c
            self.ol_dischrg_logged_charge = c
        log.append("UPS reports online and discharging (OL DISCHRG), %s"
                   "kept as OL: set onlinedischarge_calibration if it is calibrating, "
                   "or onlinedischarge_onbattery if it means on battery" % note)


def _int(text):
    if text is None:
        return 0
    try:
        return int(float(text))
    except ValueError:
        return 0
