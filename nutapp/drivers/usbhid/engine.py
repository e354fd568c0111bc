"""The usbhid-ups data walk, between a HID transport and a DriverState.

`HidUps` ties a parsed report descriptor, a subdriver's mapping table and
a transport together, and does what usbhid-ups does each poll:

- at start-up, resolve every table row to a Feature field of the
  descriptor, keep the first row per variable that exists, read it, and
  publish values, flags, enums and the commands the device can take;
- every poll, read the status rows (a quick update); every ``pollfreq``
  seconds, or after a command or a setting, read everything (a full one);
- file Input reports from the interrupt endpoint into the same report
  buffer and apply their values at once;
- carry out instant commands and settings by writing Feature reports.

Reports are buffered by id: fields that share a report cost one
GET_REPORT per poll.

The transport is synchronous and has three methods::

    get_feature(report_id, length) -> bytes or None (stalled, timed out)
    set_feature(report_id, data) -> bool
    get_string(index) -> str

and raises `DeviceGone` when the device is no longer there. The engine
never sleeps and reads no clock: callers pass `now` in seconds.
"""

from nutapp.drivers.base import STAT_HANDLED, STAT_INVALID, STAT_FAILED, \
    STAT_CONVERSION_FAILED, STAT_UNKNOWN

from .hidparser import FEATURE, INPUT, string_to_path
from .mapping import (STATIC, SEMI_STATIC, ABSENT, QUICK, CMD, ENUM, StatusBits,
                      StatusOptions, format_value, parse_long)


class DeviceGone(Exception):
    """The USB device disappeared or stopped answering for good."""


INIT, QUICK_UPDATE, FULL_UPDATE = "init", "quick", "full"


class HidUps:
    def __init__(self, desc, subdriver, transport, dstate, options=None, device=None):
        self.desc = desc
        self.sub = subdriver
        self.transport = transport
        self.dstate = dstate
        self.options = options or {}
        self.device = device
        self.productid = device.productid if device is not None else 0
        self.tweak = subdriver.tweak(device) if device is not None else None
        self.scales = {}  # per-run scale factors some subdrivers work out
        self.status = StatusBits(StatusOptions(self.options))
        self.log = []  # operator messages, taken by the driver
        self.interrupt_only = "interruptonly" in self.options
        self.use_interrupt = "pollonly" not in self.options and self.tweak != "pollonly"
        self.pollfreq = self._pollfreq()
        self.last_full = None
        self.data_changed = False
        self._buffer = {}  # report id -> [bytearray of data, time read]
        self._rows = []  # [Info, HidField or None]
        self._by_field = {}  # id(field) -> rows using it

    # -- the walk ---------------------------------------------------------
    def start(self, now):
        """Resolve the mapping table, read everything once, publish commands."""
        kind = INPUT if self.interrupt_only else FEATURE
        self._rows = []
        for info in self.sub.table:
            path = string_to_path(info.path, self.sub.names)
            field = self.desc.find(path, kind) if path is not None else None
            self._rows.append([info, field])
        self.dstate.alarm_init()
        self._walk(INIT, now)
        self._by_field = {}
        for row in self._rows:
            if row[1] is not None and not row[0].flags & ABSENT:
                self._by_field.setdefault(id(row[1]), []).append(row)
        self._apply_settings()
        self.last_full = now
        self._publish_status(now, full=True)

    def update(self, now):
        """One poll: a full walk every pollfreq seconds, else a quick one."""
        full = self.data_changed or self.last_full is None or \
            now - self.last_full > self.pollfreq
        if full:
            self.dstate.alarm_init()  # alarm rows of the walk add to it
            self._walk(FULL_UPDATE, now)
            self.last_full = now
            self.data_changed = False
        else:
            self._walk(QUICK_UPDATE, now)
        self._publish_status(now, full)

    def _walk(self, mode, now):
        # A report is read once per walk, and one filed by the interrupt
        # endpoint is used if it is fresh; anything older is read again.
        age = min(float(self.options.get("pollinterval", 2)), 1.0)
        polled = succeeded = 0
        given = set()  # variables an earlier row of this walk already gives
        for row in self._rows:
            info, field = row
            if mode == INIT:
                if field is None:
                    continue
                if info.flags & ABSENT:
                    # a driver-side setting: keep what it is (after a reconnect too)
                    if self.dstate.getinfo(info.var) is None:
                        self.dstate.setinfo(info.var, info.dfl)
                    self._flags(info)
                    continue
                if not info.var.startswith("ups.alarm") and not info.flags & CMD \
                        and info.var in given:
                    row[1] = None  # an earlier row already gives this variable
                    continue
            elif mode == QUICK_UPDATE:
                if not info.flags & QUICK:
                    continue
            else:
                if info.flags & (ABSENT | CMD):
                    continue
                if info.flags & STATIC and self.use_interrupt:
                    continue
                if info.flags & SEMI_STATIC and not self.data_changed and self.use_interrupt:
                    continue
            if field is None:
                continue
            polled += 1
            value = self.read(field, age, now)
            if value is None:
                continue
            succeeded += 1
            if info.flags & CMD:
                self.dstate.addcmd(info.var)
                continue
            if self._set_value(info, value):
                given.add(info.var)
            else:
                continue
            if mode == INIT or not self.use_interrupt:
                self._flags(info)
                if info.flags & ENUM and info.rw:
                    for text in info.lookup.enum_values(self):
                        self.dstate.addenum(info.var, text)
        if mode != INIT and polled and not succeeded:
            raise DeviceGone("no report could be read")

    def _set_value(self, info, value):
        """Publish one value; True when it set a variable (not a status bit)."""
        if info.lookup is not None:
            text = info.lookup.to_nut(value, self)
            if text is None:
                return False
            if info.var == "BOOL":
                self.status.process(text)
                return False
            if info.var.startswith("ups.alarm"):
                self.dstate.alarm_set(text)
                return False
        else:
            text = format_value(info.dfl, value)
            if text is None:
                return False
        self.dstate.setinfo(info.var, text)
        return True

    def _flags(self, info):
        if info.rw:
            self.dstate.setflags(info.var, "RW", "STRING")
            self.dstate.setaux(info.var, info.length)

    def _publish_status(self, now, full):
        d = self.dstate
        d.status_init()
        if full:
            for text in self.status.alarms():
                d.alarm_set(text)
            d.alarm_commit()
        reason = self.status.transfer_reason()
        if reason:
            d.setinfo("input.transfer.reason", reason)
        else:
            d.delinfo("input.transfer.reason")
        for word in self.status.words(d.getinfo("battery.charge"), now, self.log):
            d.status_set(word)
        d.status_commit()
        d.dataok()

    def _apply_settings(self):
        """ups.conf lowbatt/ondelay/offdelay and the composite commands."""
        d = self.dstate
        o = self.options
        if d.getinfo("battery.charge.low") is not None and "lowbatt" in o:
            d.setinfo("battery.charge.low", str(parse_long(o["lowbatt"])))
        if d.getinfo("ups.delay.start") is not None and "ondelay" in o:
            d.setinfo("ups.delay.start", str(parse_long(o["ondelay"])))
        if d.getinfo("ups.delay.shutdown") is not None and "offdelay" in o:
            d.setinfo("ups.delay.shutdown", str(parse_long(o["offdelay"])))
        off = self._row("load.off.delay")
        on = self._row("load.on.delay")
        if off is not None:
            d.addcmd("load.off")
        if on is not None:
            d.addcmd("load.on")
        if off is not None and on is not None:
            d.addcmd("shutdown.return")
            d.addcmd("shutdown.stayoff")
        d.setinfo("driver.version.data", self.sub.name)
        d.setinfo("driver.parameter.pollfreq", str(self.pollfreq))

    def _pollfreq(self):
        if "pollfreq" in self.options:
            return parse_long(self.options["pollfreq"])
        return self.sub.defaults["pollfreq"]

    def dump_tree(self, now):
        """Every field with its value, as usbhid-ups's debug dump lists them."""
        from .hidparser import path_to_string

        lines = []
        for f in self.desc.fields:
            value = self.read(f, 1.0, now) if f.kind == FEATURE else None
            line = "Path: %s, Type: %s, ReportID: 0x%02x, Offset: %d, Size: %d" % (
                path_to_string(f.path, self.sub.names), f.kind, f.report_id, f.offset, f.size)
            if value is not None:
                line += ", Value: %g" % value
            lines.append(line)
        return lines

    # -- reports ----------------------------------------------------------
    def read(self, field, age, now):
        """The physical value of `field`, from a buffered or fresh report."""
        data = self._report(field.report_id, age, now)
        if data is None:
            return None
        return field.to_physical(field.extract(data))

    def _report(self, report_id, age, now):
        entry = self._buffer.get(report_id)
        if entry is not None and (self.interrupt_only or now - entry[1] < age):
            return entry[0]
        length = self.desc.max_report_length(report_id)
        raw = self.transport.get_feature(report_id, length)
        if raw is None:
            return None
        data = bytearray(length)
        body = raw[1:] if self.desc.numbered else raw
        n = min(len(body), length)
        data[:n] = body[:n]
        self._buffer[report_id] = [data, now]
        return data

    def interrupt(self, report, now):
        """Apply an Input report from the interrupt endpoint; True if it was known."""
        if not report:
            return False
        report_id = report[0] if self.desc.numbered else 0
        body = report[1:] if self.desc.numbered else report
        fields = self.desc.input_fields(report_id)
        if not fields:
            return False
        length = self.desc.max_report_length(report_id)
        data = bytearray(length)
        n = min(len(body), length)
        data[:n] = body[:n]
        self._buffer[report_id] = [data, now]
        kind = INPUT if self.interrupt_only else FEATURE
        for f in fields:
            target = self.desc.find(f.path, kind)
            if target is None and not self.interrupt_only:
                target = self.desc.find(f.path, INPUT)
            if target is None:
                continue
            value = f.to_physical(f.extract(data))
            for info, _ in self._by_field.get(id(target), ()):
                if not info.flags & CMD:
                    self._set_value(info, value)
        return True

    def write(self, field, physical):
        """Send `physical` to `field`; False if the device refused it."""
        if field.flags == 1:  # a constant field
            return False
        logical = field.to_logical(physical)
        length = self.desc.max_report_length(field.report_id)
        entry = self._buffer.get(field.report_id)
        data = bytearray(entry[0]) if entry is not None else bytearray(length)
        field.insert(data, logical)
        payload = bytes([field.report_id]) + bytes(data) if self.desc.numbered \
            else bytes(data)
        if not self.transport.set_feature(field.report_id, payload):
            return False
        self._buffer = {}  # the device may have changed anything
        self.data_changed = True
        return True

    # -- commands and settings -------------------------------------------
    def _row(self, name):
        for info, field in self._rows:
            if field is not None and info.var.lower() == name.lower():
                return info, field
        return None

    def instcmd(self, name, param=None):
        lower = name.lower()
        if lower == "beeper.off":
            self.log.append("The 'beeper.off' command has been renamed to 'beeper.disable'")
            return self.instcmd("beeper.disable")
        if lower == "beeper.on":
            self.log.append("The 'beeper.on' command has been renamed to 'beeper.enable'")
            return self.instcmd("beeper.enable")
        row = self._row(name)
        if row is None:
            return self._composite(lower)
        info, field = row
        if not info.flags & CMD:
            return STAT_INVALID
        text = param if param is not None else info.dfl
        if info.lookup is not None:
            value = info.lookup.from_nut(text, self)
            if value is None:
                return STAT_CONVERSION_FAILED
        else:
            value = parse_long(text)
        return STAT_HANDLED if self.write(field, value) else STAT_FAILED

    def _composite(self, name):
        d = self.dstate
        if name == "load.on":
            return self.instcmd("load.on.delay", "0")
        if name == "load.off":
            return self.instcmd("load.off.delay", "0")
        if name in ("shutdown.return", "shutdown.stayoff"):
            if d.getinfo("ups.start.auto") is not None:
                self.setvar("ups.start.auto", "yes" if name == "shutdown.return" else "no")
            start = d.getinfo("ups.delay.start") if name == "shutdown.return" else "-1"
            ret = self.instcmd("load.on.delay", start)
            if ret != STAT_HANDLED:
                return ret
            # Some Tripp Lite units drop commands sent back to back.
            pause = getattr(self.transport, "pause", None)
            if pause is not None:
                pause(0.125)
            return self.instcmd("load.off.delay", d.getinfo("ups.delay.shutdown"))
        return STAT_INVALID

    def setvar(self, name, value):
        row = self._row(name)
        if row is None:
            return STAT_UNKNOWN
        info, field = row
        if not info.rw:
            return STAT_UNKNOWN
        if info.flags & ABSENT:
            self.dstate.setinfo(info.var, value)
            return STAT_HANDLED
        if info.lookup is not None:
            v = info.lookup.from_nut(value, self)
            if v is None:
                return STAT_CONVERSION_FAILED
        else:
            v = parse_long(value)
        return STAT_HANDLED if self.write(field, v) else STAT_FAILED

    # -- the context conversions see -------------------------------------
    def get_string(self, index):
        if index <= 0:
            return ""
        return (self.transport.get_string(index) or "").rstrip("\n")

    def getinfo(self, name):
        return self.dstate.getinfo(name)

    def take_log(self):
        lines, self.log = self.log, []
        return lines
