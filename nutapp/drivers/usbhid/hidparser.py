"""HID report descriptors: from bytes to a flat list of fields.

A UPS that follows the USB HID Power Device class describes its data in a
report descriptor: nested collections (``UPS`` > ``PowerSummary`` >
``PresentStatus``) whose leaves are fields of Input, Output or Feature
reports. This module walks the descriptor items once and gives each leaf
as a `HidField`: its usage path, report type and id, bit offset and size
in the report, and the logical/physical ranges and unit that turn the raw
bits into a number.

Paths are named the way NUT's usbhid-ups names them (``UPS.PowerSummary.
RemainingCapacity``), so NUT's mapping tables and debug logs read the same
here. The reading rules follow usbhid-ups where devices are known to break
the HID specification:

- a Logical Maximum that decodes below the Logical Minimum is taken as
  unsigned (firmware that wrote 0..65535 in two signed bytes);
- a Unit Exponent is a signed nibble, but one-byte two's-complement values
  (0xFE for -2) are accepted too;
- a field value outside the logical range loses its excess high bits and
  is then clamped into the range;
- a collection of a vendor-defined type (0x80 and up) adds an index node,
  printed ``[n]``, after its usage;
- Report Count beyond the listed usages gives unnamed padding, not fields.

Volts, watts and volt-amperes carry an exponent of 7 in SI units (the HID
unit is cm^2 g s^-3 A^-1); that base is removed so a descriptor that says
"volts, exponent 7" yields volts.

Pure code: no I/O, in the subset MicroPython runs.
"""

INPUT = "Input"
OUTPUT = "Output"
FEATURE = "Feature"

_MAIN_KINDS = {0x80: INPUT, 0x90: OUTPUT, 0xB0: FEATURE}

# Index nodes for collections of vendor-defined type: 0x00ff0000 + n.
INDEX_NODE = 0x00FF0000

# Units whose SI expression hides a power of ten (HID PDC 3.2.3).
_UNIT_BASE_EXPONENT = {
    0x00F0D121: 7,  # volt
    0x0000D121: 7,  # watt, volt-ampere
}


class HidError(Exception):
    """A report descriptor that cannot be walked (truncated, unbalanced)."""


class HidField:
    """One value in one report, as the descriptor defines it."""

    def __init__(self, path, kind, report_id, offset, size, state, flags):
        self.path = tuple(path)  # usage codes, 0xPPPPUUUU each
        self.kind = kind  # INPUT, OUTPUT or FEATURE
        self.report_id = report_id
        self.offset = offset  # bits from the start of the report data
        self.size = size  # bits
        self.flags = flags  # the main item's data (bit 0: constant)
        self.logical_min = state["lmin"]
        self.logical_max = state["lmax"]
        self.logical_max_assumed = state["lmax_assumed"]
        self.physical_min = state["pmin"]
        self.physical_max = state["pmax"]
        self.unit = state["unit"]
        self.unit_exponent = state["uexp"]

    def __repr__(self):
        return "<HidField %s %s id=0x%02x off=%d size=%d>" % (
            path_to_string(self.path), self.kind, self.report_id, self.offset, self.size)

    @property
    def usage(self):
        return self.path[-1]

    @property
    def constant(self):
        return bool(self.flags & 1)

    # -- raw bits <-> logical value ----------------------------------------
    def extract(self, data):
        """The logical value of this field in report `data` (without the id byte)."""
        raw = 0
        bit = self.offset
        for i in range(self.size):
            byte = bit >> 3
            if byte < len(data) and (data[byte] >> (bit & 7)) & 1:
                raw |= 1 << i
            bit += 1
        return self._fit(raw)

    def _fit(self, raw):
        lmin, lmax = self.logical_min, self.logical_max
        mag_max = lmax if lmax >= 0 else -(lmax + 1)
        mag_min = lmin if lmin >= 0 else -(lmin + 1)
        signbit = 1 << _bit_length(mag_max if mag_max > mag_min else mag_min)
        mask = signbit - 1
        if lmin < 0:
            mask |= signbit
        value = raw & mask
        if lmin < 0 and value & signbit:
            value -= mask + 1
        if value < lmin:
            return lmin
        if value > lmax:
            return lmax
        return value

    def insert(self, data, logical):
        """Write `logical` into bytearray `data` (without the id byte)."""
        bit = self.offset
        for i in range(self.size):
            byte = bit >> 3
            if byte < len(data):
                m = 1 << (bit & 7)
                if (logical >> i) & 1:
                    data[byte] |= m
                else:
                    data[byte] &= ~m & 0xFF
            bit += 1

    # -- logical <-> physical (with unit exponent) -------------------------
    def exponent(self):
        return self.unit_exponent - _UNIT_BASE_EXPONENT.get(self.unit, 0)

    def to_physical(self, logical):
        """The physical value for `logical`, scaled by the unit exponent."""
        value = self._logical_to_physical(logical)
        return value * _power_of_ten(self.exponent())

    def to_logical(self, physical):
        """The integer to send for physical value `physical`.

        Rounded to the nearest step: usbhid-ups truncates, which turns
        2.5 A in 0.01 A units into 249 after floating-point division.
        """
        value = physical / _power_of_ten(self.exponent())
        if self.exponent() != 0:
            value = round(value)
        return self._physical_to_logical(value)

    def _scaled(self):
        pmin, pmax = self.physical_min, self.physical_max
        if pmin is None or pmax is None or (pmin == 0 and pmax == 0):
            return False
        return pmax > pmin and self.logical_max > self.logical_min

    def _logical_to_physical(self, logical):
        if not self._scaled():
            return float(logical)
        pmin, pmax = self.physical_min, self.physical_max
        factor = float(pmax - pmin) / (self.logical_max - self.logical_min)
        value = (logical - self.logical_min) * factor + pmin
        if value > pmax:
            return float(pmax)
        if value < pmin:
            return float(pmin)
        return value

    def _physical_to_logical(self, physical):
        if not self._scaled():
            return int(physical)
        pmin, pmax = self.physical_min, self.physical_max
        factor = float(self.logical_max - self.logical_min) / (pmax - pmin)
        value = int((physical - pmin) * factor) + self.logical_min
        if value > self.logical_max:
            return self.logical_max
        if value < self.logical_min:
            return self.logical_min
        return value


class ReportDescriptor:
    """A parsed report descriptor: its fields in descriptor order."""

    def __init__(self, fields, lengths, numbered):
        self.fields = fields
        self._lengths = lengths  # (report_id, kind) -> bytes of data
        self.numbered = numbered  # True when the device uses report ids

    def report_length(self, report_id, kind=FEATURE):
        """Bytes of data in a report, not counting the report id byte."""
        return self._lengths.get((report_id, kind), 0)

    def max_report_length(self, report_id):
        n = 0
        for (rid, kind), length in self._lengths.items():
            if rid == report_id and length > n:
                n = length
        return n

    def find(self, path, kind=FEATURE):
        """The first field of `kind` whose path starts with `path` (NUT's rule)."""
        n = len(path)
        for f in self.fields:
            if f.kind == kind and len(f.path) >= n and f.path[:n] == path:
                return f
        return None

    def find_by_id(self, report_id, usage, kind=None):
        """The first field in report `report_id` whose last usage is `usage`."""
        for f in self.fields:
            if f.report_id == report_id and f.path[-1] == usage:
                if kind is None or f.kind == kind:
                    return f
        return None

    def input_fields(self, report_id):
        return [f for f in self.fields if f.report_id == report_id and f.kind == INPUT]


def parse(desc):
    """Walk report descriptor `desc` (bytes); return a `ReportDescriptor`."""
    desc = bytes(desc)
    state = {"page": 0, "lmin": 0, "lmax": 0, "lmax_assumed": False, "pmin": None,
             "pmax": None, "unit": 0, "uexp": 0, "size": 0, "rid": 0, "count": 0}
    pushed = []
    usages = []
    usage_range = [None, None]
    path = []
    depths = []  # nodes each open collection added to path
    offsets = {}
    fields = []
    numbered = False
    pos = 0
    n = len(desc)

    while pos < n:
        prefix = desc[pos]
        pos += 1
        if prefix == 0xFE:  # long item: skip it
            if pos + 2 > n:
                raise HidError("truncated long item at byte %d" % (pos - 1))
            pos += 2 + desc[pos]
            continue
        size = (0, 1, 2, 4)[prefix & 3]
        if pos + size > n:
            raise HidError("truncated item at byte %d" % (pos - 1))
        raw = 0
        for i in range(size):
            raw |= desc[pos + i] << (8 * i)
        pos += size
        tag = prefix & 0xFC
        kind = prefix & 0x0C

        if kind == 0x00:  # main items
            if tag in _MAIN_KINDS:
                _add_fields(fields, offsets, path, usages, usage_range, state,
                            _MAIN_KINDS[tag], raw)
            elif tag == 0xA0:  # collection
                node = usages[0] if usages else 0
                added = [node]
                if raw >= 0x80:
                    added.append(INDEX_NODE | (raw & 0x7F))
                path.extend(added)
                depths.append(len(added))
            elif tag == 0xC0:  # end collection
                if not depths:
                    raise HidError("End Collection without Collection at byte %d" % (pos - 1))
                for _ in range(depths.pop()):
                    path.pop()
            usages = []
            usage_range = [None, None]
        elif kind == 0x04:  # global items
            numbered = _global_item(tag, raw, size, state, pushed) or numbered
        elif kind == 0x08:  # local items
            if tag == 0x08:
                usages.append(raw if size == 4 else (state["page"] << 16) | (raw & 0xFFFF))
            elif tag == 0x18:
                usage_range[0] = raw if size == 4 else (state["page"] << 16) | (raw & 0xFFFF)
            elif tag == 0x28:
                usage_range[1] = raw if size == 4 else (state["page"] << 16) | (raw & 0xFFFF)

    if depths:
        raise HidError("%d collection(s) not closed" % len(depths))
    lengths = {}
    for f in fields:
        key = (f.report_id, f.kind)
        end = (f.offset + f.size + 7) >> 3
        if end > lengths.get(key, 0):
            lengths[key] = end
    for (rid, k), bits in offsets.items():
        end = (bits + 7) >> 3
        if end > lengths.get((rid, k), 0):
            lengths[(rid, k)] = end
    return ReportDescriptor(fields, lengths, numbered)


def _global_item(tag, raw, size, state, pushed):
    """Apply one global item; return True for a Report ID."""
    if tag == 0x04:
        state["page"] = raw & 0xFFFF
    elif tag == 0x14:
        state["lmin"] = _signed(raw, size)
    elif tag == 0x24:
        lmax = _signed(raw, size)
        state["lmax_assumed"] = lmax < state["lmin"]
        state["lmax"] = raw if lmax < state["lmin"] else lmax
    elif tag == 0x34:
        state["pmin"] = _signed(raw, size)
    elif tag == 0x44:
        state["pmax"] = _signed(raw, size)
    elif tag == 0x54:
        exp = raw & 0xFF
        if exp >= 0x80:
            exp -= 0x100
        if exp > 7:
            exp -= 16
        state["uexp"] = exp
    elif tag == 0x64:
        state["unit"] = raw
    elif tag == 0x74:
        state["size"] = raw
    elif tag == 0x84:
        state["rid"] = raw
        return True
    elif tag == 0x94:
        state["count"] = raw
    elif tag == 0xA4:
        pushed.append(dict(state))
    elif tag == 0xB4:
        if not pushed:
            raise HidError("Pop without Push")
        state.clear()
        state.update(pushed.pop())
    return False


# Bounds no real UPS comes near, so a garbled descriptor cannot make the
# parser allocate or loop without end.
MAX_FIELDS = 4096
MAX_REPORT_BITS = 8 * 4096


def _add_fields(fields, offsets, path, usages, usage_range, state, kind, flags):
    if state["count"] * state["size"] > MAX_REPORT_BITS or state["count"] > MAX_FIELDS:
        raise HidError("report of %d x %d bits is beyond any UPS"
                       % (state["count"], state["size"]))
    key = (state["rid"], kind)
    offset = offsets.get(key, 0)
    names = list(usages)
    lo, hi = usage_range
    if lo is not None and hi is not None and hi >= lo:
        u = lo
        while u <= hi and len(names) < state["count"]:  # bounded by count
            names.append(u)
            u += 1
    if len(fields) + state["count"] > MAX_FIELDS:
        raise HidError("more than %d fields" % MAX_FIELDS)
    for i in range(state["count"]):
        if i < len(names) and names[i] != 0:
            fields.append(HidField(path + [names[i]], kind, state["rid"], offset,
                                   state["size"], state, flags))
        offset += state["size"]
    offsets[key] = offset


def _signed(raw, size):
    if size == 0:
        return 0
    bits = 8 * size
    if raw & (1 << (bits - 1)):
        return raw - (1 << bits)
    return raw


def _bit_length(x):
    n = 0
    while x:
        x >>= 1
        n += 1
    return n


def _power_of_ten(exp):
    # Built by repeated multiplication, as usbhid-ups does, so rounding of
    # formatted values matches NUT's output digit for digit.
    value = 1.0
    while exp > 0:
        value = 10.0 * value
        exp -= 1
    while exp < 0:
        value = (1.0 / 10.0) * value
        exp += 1
    return value


# -- usage names -------------------------------------------------------------

# HID Power Device page (0x84) and Battery System page (0x85) usage names,
# as NUT spells them in paths.
POWER_DEVICE_USAGES = (
    ("Undefined", 0x00840000), ("iName", 0x00840001), ("PresentStatus", 0x00840002),
    ("ChangedStatus", 0x00840003), ("UPS", 0x00840004), ("PowerSupply", 0x00840005),
    ("BatterySystem", 0x00840010), ("BatterySystemID", 0x00840011),
    ("Battery", 0x00840012), ("BatteryID", 0x00840013), ("Charger", 0x00840014),
    ("ChargerID", 0x00840015), ("PowerConverter", 0x00840016),
    ("PowerConverterID", 0x00840017), ("OutletSystem", 0x00840018),
    ("OutletSystemID", 0x00840019), ("Input", 0x0084001A), ("InputID", 0x0084001B),
    ("Output", 0x0084001C), ("OutputID", 0x0084001D), ("Flow", 0x0084001E),
    ("FlowID", 0x0084001F), ("Outlet", 0x00840020), ("OutletID", 0x00840021),
    ("Gang", 0x00840022), ("GangID", 0x00840023), ("PowerSummary", 0x00840024),
    ("PowerSummaryID", 0x00840025), ("Voltage", 0x00840030), ("Current", 0x00840031),
    ("Frequency", 0x00840032), ("ApparentPower", 0x00840033),
    ("ActivePower", 0x00840034), ("PercentLoad", 0x00840035),
    ("Temperature", 0x00840036), ("Humidity", 0x00840037), ("BadCount", 0x00840038),
    ("ConfigVoltage", 0x00840040), ("ConfigCurrent", 0x00840041),
    ("ConfigFrequency", 0x00840042), ("ConfigApparentPower", 0x00840043),
    ("ConfigActivePower", 0x00840044), ("ConfigPercentLoad", 0x00840045),
    ("ConfigTemperature", 0x00840046), ("ConfigHumidity", 0x00840047),
    ("SwitchOnControl", 0x00840050), ("SwitchOffControl", 0x00840051),
    ("ToggleControl", 0x00840052), ("LowVoltageTransfer", 0x00840053),
    ("HighVoltageTransfer", 0x00840054), ("DelayBeforeReboot", 0x00840055),
    ("DelayBeforeStartup", 0x00840056), ("DelayBeforeShutdown", 0x00840057),
    ("Test", 0x00840058), ("ModuleReset", 0x00840059),
    ("AudibleAlarmControl", 0x0084005A), ("Present", 0x00840060), ("Good", 0x00840061),
    ("InternalFailure", 0x00840062), ("VoltageOutOfRange", 0x00840063),
    ("FrequencyOutOfRange", 0x00840064), ("Overload", 0x00840065),
    ("OverCharged", 0x00840066), ("OverTemperature", 0x00840067),
    ("ShutdownRequested", 0x00840068), ("ShutdownImminent", 0x00840069),
    ("SwitchOn/Off", 0x0084006B), ("Switchable", 0x0084006C), ("Used", 0x0084006D),
    ("Boost", 0x0084006E), ("Buck", 0x0084006F), ("Initialized", 0x00840070),
    ("Tested", 0x00840071), ("AwaitingPower", 0x00840072),
    ("CommunicationLost", 0x00840073), ("iManufacturer", 0x008400FD),
    ("iProduct", 0x008400FE), ("iSerialNumber", 0x008400FF),
)

BATTERY_SYSTEM_USAGES = (
    ("Undefined", 0x00850000), ("SMBBatteryMode", 0x00850001),
    ("SMBBatteryStatus", 0x00850002), ("SMBAlarmWarning", 0x00850003),
    ("SMBChargerMode", 0x00850004), ("SMBChargerStatus", 0x00850005),
    ("SMBChargerSpecInfo", 0x00850006), ("SMBSelectorState", 0x00850007),
    ("SMBSelectorPresets", 0x00850008), ("SMBSelectorInfo", 0x00850009),
    ("OptionalMfgFunction1", 0x00850010), ("OptionalMfgFunction2", 0x00850011),
    ("OptionalMfgFunction3", 0x00850012), ("OptionalMfgFunction4", 0x00850013),
    ("OptionalMfgFunction5", 0x00850014), ("ConnectionToSMBus", 0x00850015),
    ("OutputConnection", 0x00850016), ("ChargerConnection", 0x00850017),
    ("BatteryInsertion", 0x00850018), ("Usenext", 0x00850019), ("OKToUse", 0x0085001A),
    ("BatterySupported", 0x0085001B), ("SelectorRevision", 0x0085001C),
    ("ChargingIndicator", 0x0085001D), ("ManufacturerAccess", 0x00850028),
    ("RemainingCapacityLimit", 0x00850029), ("RemainingTimeLimit", 0x0085002A),
    ("AtRate", 0x0085002B), ("CapacityMode", 0x0085002C),
    ("BroadcastToCharger", 0x0085002D), ("PrimaryBattery", 0x0085002E),
    ("ChargeController", 0x0085002F), ("TerminateCharge", 0x00850040),
    ("TerminateDischarge", 0x00850041), ("BelowRemainingCapacityLimit", 0x00850042),
    ("RemainingTimeLimitExpired", 0x00850043), ("Charging", 0x00850044),
    ("Discharging", 0x00850045), ("FullyCharged", 0x00850046),
    ("FullyDischarged", 0x00850047), ("ConditioningFlag", 0x00850048),
    ("AtRateOK", 0x00850049), ("SMBErrorCode", 0x0085004A),
    ("NeedReplacement", 0x0085004B), ("AtRateTimeToFull", 0x00850060),
    ("AtRateTimeToEmpty", 0x00850061), ("AverageCurrent", 0x00850062),
    ("Maxerror", 0x00850063), ("RelativeStateOfCharge", 0x00850064),
    ("AbsoluteStateOfCharge", 0x00850065), ("RemainingCapacity", 0x00850066),
    ("FullChargeCapacity", 0x00850067), ("RunTimeToEmpty", 0x00850068),
    ("AverageTimeToEmpty", 0x00850069), ("AverageTimeToFull", 0x0085006A),
    ("CycleCount", 0x0085006B), ("BattPackModelLevel", 0x00850080),
    ("InternalChargeController", 0x00850081), ("PrimaryBatterySupport", 0x00850082),
    ("DesignCapacity", 0x00850083), ("SpecificationInfo", 0x00850084),
    ("ManufacturerDate", 0x00850085), ("SerialNumber", 0x00850086),
    ("iManufacturerName", 0x00850087), ("iDevicename", 0x00850088),
    ("iDeviceChemistry", 0x00850089), ("ManufacturerData", 0x0085008A),
    ("Rechargeable", 0x0085008B), ("WarningCapacityLimit", 0x0085008C),
    ("CapacityGranularity1", 0x0085008D), ("CapacityGranularity2", 0x0085008E),
    ("iOEMInformation", 0x0085008F), ("InhibitCharge", 0x008500C0),
    ("EnablePolling", 0x008500C1), ("ResetToZero", 0x008500C2),
    ("ACPresent", 0x008500D0), ("BatteryPresent", 0x008500D1),
    ("PowerFail", 0x008500D2), ("AlarmInhibited", 0x008500D3),
    ("ThermistorUnderRange", 0x008500D4), ("ThermistorHot", 0x008500D5),
    ("ThermistorCold", 0x008500D6), ("ThermistorOverRange", 0x008500D7),
    ("VoltageOutOfRange", 0x008500D8), ("CurrentOutOfRange", 0x008500D9),
    ("CurrentNotRegulated", 0x008500DA), ("VoltageNotRegulated", 0x008500DB),
    ("MasterMode", 0x008500DC), ("ChargerSelectorSupport", 0x008500F0),
    ("ChargerSpec", 0x008500F1), ("Level2", 0x008500F2), ("Level3", 0x008500F3),
)

STANDARD_USAGES = POWER_DEVICE_USAGES + BATTERY_SYSTEM_USAGES


class UsageNames:
    """Two-way usage name table; earlier tables win, as in NUT's lookups."""

    def __init__(self, *tables):
        self._by_name = {}
        self._by_code = {}
        for table in tables:
            for name, code in table:
                key = name.lower()
                if key not in self._by_name:
                    self._by_name[key] = code
                if code not in self._by_code:
                    self._by_code[code] = name

    def name(self, code):
        return self._by_code.get(code)

    def code(self, name):
        return self._by_name.get(name.lower())


STANDARD_NAMES = UsageNames(STANDARD_USAGES)


def path_to_string(path, names=STANDARD_NAMES):
    """``UPS.PowerSummary.RemainingCapacity``; unknown usages as 8 hex digits."""
    parts = []
    for node in path:
        name = names.name(node) if names is not None else None
        if name is not None:
            parts.append(name)
        elif node & 0xFFFF0000 == INDEX_NODE:
            parts.append("[%d]" % (node & 0xFFFF))
        else:
            parts.append("%08x" % node)
    return ".".join(parts)


def string_to_path(text, names=STANDARD_NAMES):
    """The usage codes of a dotted path; None if a part is not understood."""
    path = []
    for part in text.split("."):
        code = names.code(part)
        if code is not None:
            path.append(code)
        elif part.startswith("[") and part.endswith("]") and part[1:-1].isdigit():
            path.append(INDEX_NODE + int(part[1:-1]))
        elif part and _is_hex(part):
            path.append(int(part, 16))
        else:
            return None
    return tuple(path)


def _is_hex(text):
    if text.startswith("0x") or text.startswith("0X"):
        text = text[2:]
    if not text or len(text) > 8:
        return False
    for c in text:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True
