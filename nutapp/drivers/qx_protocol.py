"""The Megatec/Q1 serial protocol, without any I/O.

Megatec-family UPSes (and the many brands that reuse the same controller)
answer a handful of one-letter queries, each terminated by a carriage
return. The replies are fixed-width ASCII records:

    Q1  -> (MMM.M NNN.N PPP.P QQQ RR.R S.SS TT.T b7b6b5b4b3b2b1b0
           input V, input fault V, output V, load %, input Hz,
           battery V, temperature, eight status bits
    F   -> #MMM.M QQQ SS.SS RR.R
           ratings: input V, input A, battery V, input Hz
    I   -> #Company_Name___ UPS_Model_ Version___
           manufacturer (15), model (10), firmware (10)

Like NUT's nutdrv_qx, fields are taken from fixed columns after a length
check and a check of the leading character. On top of that the blanks
between fields must be where the protocol puts them, so a reply that is
shifted by a stray byte is refused instead of being read as nonsense. A
numeric field that is not a number is left out (NUT skips that variable
and keeps the others); a frame that fails the checks raises `QxError`.

Commands carry no reply on most units; some echo the command back when
they refuse it, some answer "ACK" or "(ACK" when they accept it.

Everything here takes strings in and gives values out: the serial port,
clocks and logging live in `nutdrv_qx`. The module runs under MicroPython.
"""

from nutapp.core.errors import NutError


class QxError(NutError):
    """A reply that does not follow the Megatec/Q1 protocol."""

    word = "INVALID-ARGUMENT"


# Queries, as sent on the wire.
Q1 = "Q1\r"
RATINGS = "F\r"
VENDOR = "I\r"

# (variable, first column, last column, printf format) for each reply.
Q1_FIELDS = (
    ("input.voltage", 1, 5, "%.1f"),
    ("input.voltage.fault", 7, 11, "%.1f"),
    ("output.voltage", 13, 17, "%.1f"),
    ("ups.load", 19, 21, "%.0f"),
    ("input.frequency", 23, 26, "%.1f"),
    ("battery.voltage", 28, 31, "%.2f"),
    ("ups.temperature", 33, 36, "%.1f"),
)
Q1_BITS_FROM = 38
Q1_LEN = 46  # without the carriage return

RATING_FIELDS = (
    ("input.voltage.nominal", 1, 5, "%.0f"),
    ("input.current.nominal", 7, 9, "%.1f"),
    ("battery.voltage.nominal", 11, 15, "%.1f"),
    ("input.frequency.nominal", 17, 20, "%.0f"),
)
RATING_LEN = 21

# Manufacturer, model and firmware: 15, 10 and 10 characters. Some
# controllers send one byte less at the end, which NUT accepts too.
VENDOR_FIELDS = (
    ("device.mfr", 1, 15),
    ("device.model", 17, 26),
    ("ups.firmware", 28, None),
)
VENDOR_LEN = 37

# Status bits, left to right (b7 first) as they appear in the Q1 reply.
BIT_UTILITY_FAIL = 0
BIT_BATTERY_LOW = 1
BIT_BYPASS_BOOST_BUCK = 2
BIT_UPS_FAILED = 3
BIT_STANDBY = 4
BIT_TEST = 5
BIT_SHUTDOWN = 6
BIT_BEEPER = 7

ALARM_SELFTEST = "UPS selftest failed!"
ALARM_SHUTDOWN = "Shutdown imminent!"

# Delay ranges of ups.delay.start / ups.delay.shutdown, in seconds.
ONDELAY_RANGE = (0, 599940)
OFFDELAY_RANGE = (12, 600)
DEFAULT_ONDELAY = 180
DEFAULT_OFFDELAY = 30

# Battery packs (voltage multipliers) tried when the UPS reports a part
# of its battery voltage; the largest one that fits the nominal wins.
PACKS = (120, 100, 80, 60, 48, 36, 30, 24, 18, 12, 8, 6, 4, 3, 2, 1, 0.5)


# -- decoding replies -----------------------------------------------------
def decode(raw):
    """Bytes read from the port -> reply text without the final CR.

    Raises QxError for an empty reply or bytes outside printable ASCII.
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw:
        raise QxError("empty reply")
    for b in raw:
        if b < 0x20 or b > 0x7E:
            raise QxError("non-ASCII byte 0x%02x in reply" % b)
    return raw.decode()


class Q1Reply:
    """A parsed Q1 reply: `values` as (variable, text) pairs, `bits`, `floats`."""

    def __init__(self, values, floats, bits, skipped):
        self.values = values
        self.floats = floats  # variable -> float, for the numeric fields read
        self.bits = bits
        self.skipped = skipped  # variables whose field was not a number

    def get(self, name):
        return self.floats.get(name)


def parse_q1(line):
    """Parse the text of a Q1 reply (see `decode`) into a `Q1Reply`."""
    _check_frame(line, "(", Q1_LEN, "Q1")
    _check_blanks(line, Q1_FIELDS, "Q1")
    if line[Q1_BITS_FROM - 1] != " ":
        raise QxError("Q1 reply: status bits not where expected")
    bits = line[Q1_BITS_FROM:Q1_BITS_FROM + 8]
    for c in bits:
        if c not in "01":
            raise QxError("Q1 reply: status bits %r are not 0/1" % bits)
    values, floats, skipped = _read_numbers(line, Q1_FIELDS)
    return Q1Reply(values, floats, bits, skipped)


def parse_ratings(line):
    """Parse an F reply into (variable, text) pairs; numbers that are not
    numbers are left out."""
    _check_frame(line, "#", RATING_LEN, "F")
    _check_blanks(line, RATING_FIELDS, "F")
    values, _, _ = _read_numbers(line, RATING_FIELDS)
    return values


def parse_vendor(line):
    """Parse an I reply into (variable, text) pairs; blank fields are left out."""
    _check_frame(line, "#", VENDOR_LEN, "I")
    out = []
    for name, first, last in VENDOR_FIELDS:
        text = line[first:] if last is None else line[first:last + 1]
        text = text.strip(" #")
        if text:
            out.append((name, text))
    return out


def _check_frame(line, lead, minlen, what):
    if len(line) < minlen:
        raise QxError("%s reply too short (%d < %d bytes)" % (what, len(line), minlen))
    if line[0] != lead:
        raise QxError("%s reply starts with %r, not %r" % (what, line[0], lead))


def _check_blanks(line, fields, what):
    for i in range(1, len(fields)):
        col = fields[i][1] - 1
        if line[col] != " ":
            raise QxError("%s reply: fields not in their columns (column %d is %r)"
                          % (what, col, line[col]))


def _read_numbers(line, fields):
    values = []
    floats = {}
    skipped = []
    for name, first, last, fmt in fields:
        x = to_number(line[first:last + 1])
        if x is None:
            skipped.append(name)
            continue
        floats[name] = x
        values.append((name, fmt % x))
    return values, floats, skipped


def to_number(text):
    """The float in a fixed-width field, or None (as NUT: digits, dots, blanks)."""
    text = text.strip()
    if not text:
        return None
    for c in text:
        if c not in "0123456789.":
            return None
    try:
        return float(text)
    except ValueError:
        return None


# -- status bits ------------------------------------------------------------
class Q1Status:
    """What the eight status bits say, in NUT's vocabulary."""

    def __init__(self, words, alarms, ups_type, beeper):
        self.words = words  # ups.status words, in NUT's order
        self.alarms = alarms  # ups.alarm texts
        self.ups_type = ups_type
        self.beeper = beeper  # ups.beeper.status


def interpret_bits(bits, input_voltage=None, output_voltage=None, ignoresab=False):
    """Map Q1 status bits to ups.status words, alarms, ups.type, beeper.

    Bit 2 ("bypass/boost or buck active") does not say which of the three
    it is; as NUT does, the ratio of output to input voltage decides:
    below 0.5 nothing (implausible), below 0.95 TRIM, below 1.05 BYPASS,
    below 1.5 BOOST, else nothing.
    """
    on = [c == "1" for c in bits]
    words = ["OB" if on[BIT_UTILITY_FAIL] else "OL"]
    alarms = []
    if on[BIT_BATTERY_LOW]:
        words.append("LB")
    if on[BIT_BYPASS_BOOST_BUCK]:
        word = _bypass_word(input_voltage, output_voltage)
        if word:
            words.append(word)
    if on[BIT_TEST]:
        words.append("CAL")
    if on[BIT_SHUTDOWN] and not ignoresab:
        words.append("FSD")
        alarms.append(ALARM_SHUTDOWN)
    if on[BIT_UPS_FAILED]:
        alarms.insert(0, ALARM_SELFTEST)
    ups_type = "offline / line interactive" if on[BIT_STANDBY] else "online"
    beeper = "enabled" if on[BIT_BEEPER] else "disabled"
    return Q1Status(_nut_order(words), alarms, ups_type, beeper)


def _bypass_word(vi, vo):
    if vi is None or vo is None or vi <= 0:
        return None
    if vo < 0.5 * vi:
        return None
    if vo < 0.95 * vi:
        return "TRIM"
    if vo < 1.05 * vi:
        return "BYPASS"
    if vo < 1.5 * vi:
        return "BOOST"
    return None


_ORDER = ("OL", "OB", "LB", "TRIM", "BOOST", "BYPASS", "CAL", "FSD")


def _nut_order(words):
    return [w for w in _ORDER if w in words]


# -- battery charge and runtime guesswork -----------------------------------
def guess_voltage_limits(nominal):
    """(battery.voltage.low, battery.voltage.high) from the nominal voltage:
    NUT's rule of 104/120 and 130/120 of nominal (20.8 V and 26 V for 24 V)."""
    return 104.0 * nominal / 120.0, 130.0 * nominal / 120.0


def detect_packs(voltage, nominal):
    """How many packs the reported battery voltage stands for, or None.

    Some units report the voltage of one cell or block (2.27 V on a 24 V
    battery). The largest multiplier that keeps the product at or below
    1.25 x nominal is chosen; if that still falls below 0.8 x nominal, the
    reading does not fit any and None is returned.
    """
    if not voltage or not nominal or voltage <= 0 or nominal <= 0:
        return None
    for packs in PACKS:
        if packs * voltage > 1.25 * nominal:
            continue
        if packs * voltage < 0.8 * nominal:
            return None
        return packs
    return None


def charge_from_voltage(voltage, low, high):
    """Battery charge in percent (0..100) from where the voltage sits
    between low and high; None if the limits make no sense."""
    if low is None or high is None or low <= 0 or high <= low:
        return None
    charge = 100.0 * (voltage - low) / (high - low)
    return min(100.0, max(0.0, charge))


class RuntimeCal:
    """The `runtimecal = rh,lh,rl,ll` option: runtime rh seconds at lh % load
    and rl seconds at ll % load. Raises ValueError with a reason."""

    def __init__(self, text):
        parts = [p.strip() for p in text.split(",")]
        if len(parts) < 4:
            raise ValueError("runtimecal needs four values: runtime,load,runtime,load")
        try:
            rh, lh, rl, ll = [float(p) for p in parts[:4]]
        except ValueError:
            raise ValueError("runtimecal values must be numbers: %r" % text)
        if rl < rh or rh <= 0:
            raise ValueError("runtimecal runtimes out of range (need 0 < %g <= %g)" % (rh, rl))
        if lh > 100 or ll > lh or ll <= 0:
            raise ValueError("runtimecal loads out of range (need 0 < %g <= %g <= 100)"
                             % (ll, lh))
        if lh == ll:
            raise ValueError("runtimecal needs two different loads")
        import math

        # runtime ~ load^-exp, fitted through the two points.
        self.exponent = math.log(rl / rh) / math.log(lh / ll)
        self.nominal = rh * math.pow(lh / 100.0, self.exponent)  # at 100 % load


class RuntimeEstimator:
    """NUT's bookkeeping of charge going in and out of the battery.

    `est` is the remaining runtime at full load, in seconds. On line it
    grows back to nominal over `chargetime`; on battery it drains by the
    effective load for every second spent. A battery voltage that says
    less than the estimate pulls the estimate down (old batteries).
    """

    def __init__(self, cal, charge, chargetime=43200, idleload=10.0):
        if chargetime <= 0:
            raise ValueError("chargetime must be positive")
        if idleload <= 0 or idleload > 100:
            raise ValueError("idleload must be in (0..100]")
        self.cal = cal
        self.chargetime = float(chargetime)
        self.idle = idleload / 100.0
        self.est = cal.nominal * charge / 100.0
        self.load_eff = 1.0

    def effective_load(self, load_percent):
        eff = (load_percent / 100.0) ** self.cal.exponent if load_percent > 0 else 0.0
        return max(eff, self.idle)

    def step(self, online, elapsed, load_percent=None, voltage_charge=None):
        """Advance by `elapsed` seconds; return (charge %, runtime s)."""
        nominal = self.cal.nominal
        if online:
            self.est = min(nominal, self.est + nominal * elapsed / self.chargetime)
        else:
            self.est = max(0.0, self.est - self.load_eff * elapsed)
        if voltage_charge is not None:
            fraction = voltage_charge / 100.0
            if fraction < self.est / nominal:
                self.est = fraction * nominal
        if load_percent is not None:
            self.load_eff = self.effective_load(load_percent)
        return 100.0 * self.est / nominal, self.est / self.load_eff


# -- commands -------------------------------------------------------------
SIMPLE_COMMANDS = {
    "beeper.toggle": "Q\r",
    "load.off": "S00R0000\r",
    "load.on": "C\r",
    "shutdown.stop": "C\r",
    "test.battery.start.deep": "TL\r",
    "test.battery.start.quick": "T\r",
    "test.battery.stop": "CT\r",
}

COMMANDS = tuple(sorted(list(SIMPLE_COMMANDS)
                        + ["shutdown.return", "shutdown.stayoff", "test.battery.start"]))


def _offdelay_text(offdelay):
    # Below a minute the unit counts in tenths of a minute: .2 .. .9.
    if offdelay < 60:
        return ".%d" % (offdelay // 6)
    return "%02d" % (offdelay // 60)


def command_text(name, param=None, offdelay=DEFAULT_OFFDELAY, ondelay=DEFAULT_ONDELAY,
                 test_minutes=False):
    """The bytes to send (as text) for instant command `name`.

    `offdelay`/`ondelay` are ups.delay.shutdown / ups.delay.start in
    seconds. `test.battery.start` takes its duration in seconds (nutdrv_qx,
    60..5940, default 600) or, with `test_minutes`, in minutes (blazer,
    1..99, default 10). Raises KeyError for an unknown command and
    ValueError for a parameter out of range.
    """
    if name in SIMPLE_COMMANDS:
        return SIMPLE_COMMANDS[name]
    if name == "shutdown.return":
        if offdelay < 0:
            raise ValueError("offdelay must not be negative")
        minutes = ondelay // 60
        if minutes <= 0:
            return "S%s\r" % _offdelay_text(offdelay)
        return "S%sR%04d\r" % (_offdelay_text(offdelay), minutes)
    if name == "shutdown.stayoff":
        if offdelay < 0:
            raise ValueError("offdelay must not be negative")
        return "S%sR0000\r" % _offdelay_text(offdelay)
    if name == "test.battery.start":
        return "T%02d\r" % _test_minutes(param, test_minutes)
    raise KeyError(name)


def _test_minutes(param, in_minutes):
    if in_minutes:
        value = _int_param(param, 10)
        if value < 1 or value > 99:
            raise ValueError("battery test time %d out of range [1..99] minutes" % value)
        return value
    value = _int_param(param, 600)
    if value < 60 or value > 5940:
        raise ValueError("battery test time %d out of range [60..5940] seconds" % value)
    return value // 60


def _int_param(param, default):
    if param is None or param == "":
        return default
    try:
        return int(param)
    except ValueError:
        raise ValueError("not a whole number: %r" % param)


def command_accepted(reply):
    """Whether the reply to a command means it was accepted.

    No reply at all, "ACK" or "(ACK" mean yes; anything else (typically
    the command echoed back) means the unit refused it.
    """
    reply = reply.rstrip("\r")
    return reply == "" or reply.startswith("ACK") or reply.startswith("(ACK")


def truncate_delay(name, seconds):
    """Round a delay the way the unit can carry it out; ValueError if the
    value is outside the variable's range.

    ups.delay.start counts whole minutes; ups.delay.shutdown counts
    6-second steps below a minute and whole minutes above.
    """
    if name == "ups.delay.start":
        lo, hi = ONDELAY_RANGE
        if seconds < lo or seconds > hi:
            raise ValueError("ups.delay.start %d out of range [%d..%d]" % (seconds, lo, hi))
        return seconds - seconds % 60
    if name == "ups.delay.shutdown":
        lo, hi = OFFDELAY_RANGE
        if seconds < lo or seconds > hi:
            raise ValueError("ups.delay.shutdown %d out of range [%d..%d]" % (seconds, lo, hi))
        if seconds < 60:
            return seconds - seconds % 6
        return seconds - seconds % 60
    raise KeyError(name)
