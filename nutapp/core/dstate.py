"""A driver's side of the state: what it knows and what it must tell upsd.

Drivers call NUT's familiar operations (`setinfo`, `status_set`,
`addcmd`...). Each real change becomes a line of the driver socket
protocol in `pending`, which the driver framework broadcasts to every
connected server; `dump_lines` answers DUMPALL with the whole state.

`override.<var>` values from ups.conf win over whatever the driver reads;
`default.<var>` values stand until the driver reads something.
"""

from .parseconf import quote
from .state import UpsState, flags_to_words, RW, STRING, NUMBER

# Status words in the order NUT's drivers usually emit them.
STATUS_WORDS = ("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS",
                "CAL", "OFF", "OVER", "TRIM", "BOOST", "FSD")


class DriverState:
    def __init__(self):
        self.state = UpsState()
        self.pending = []
        self.stale = True
        self.overrides = {}  # lower-case name -> value
        self._status = None
        self._alarm = None
        self.alarm_active = False
        self.ignorelb = False  # ups.conf ignorelb: LB from charge/runtime lows only

    # -- variables --------------------------------------------------------
    def setinfo(self, name, value):
        value = str(value)
        key = name.lower()
        if key in self.overrides and value != self.overrides[key]:
            return False
        if self.state.setinfo(name, value):
            self.pending.append('SETINFO %s "%s"' % (name, quote(value)))
            return True
        return False

    def getinfo(self, name):
        return self.state.getinfo(name)

    def delinfo(self, name):
        if name.lower() in self.overrides:
            return False
        if self.state.delinfo(name):
            self.pending.append("DELINFO " + name)
            return True
        return False

    def set_override(self, name, value):
        """Pin `name` to `value` (ups.conf override.<name>)."""
        self.overrides[name.lower()] = value
        self.setinfo(name, value)

    def set_default(self, name, value):
        """Give `name` a value until the driver reads one (default.<name>)."""
        if self.state.get(name) is None:
            self.setinfo(name, value)

    def setflags(self, name, *flags):
        bits = 0
        for f in flags:
            bits |= {"RW": RW, "STRING": STRING, "NUMBER": NUMBER}[f.upper()]
        if self.state.setflags(name, bits):
            self.pending.append(" ".join(["SETFLAGS", name] + flags_to_words(bits)))
            return True
        return False

    def setaux(self, name, aux):
        if self.state.setaux(name, int(aux)):
            self.pending.append("SETAUX %s %d" % (name, int(aux)))
            return True
        return False

    def addenum(self, name, value):
        if self.state.addenum(name, value):
            self.pending.append('ADDENUM %s "%s"' % (name, quote(value)))
            return True
        return False

    def delenum(self, name, value):
        if self.state.delenum(name, value):
            self.pending.append('DELENUM %s "%s"' % (name, quote(value)))
            return True
        return False

    def addrange(self, name, lo, hi):
        if self.state.addrange(name, int(lo), int(hi)):
            self.pending.append("ADDRANGE %s %d %d" % (name, int(lo), int(hi)))
            return True
        return False

    def delrange(self, name, lo, hi):
        if self.state.delrange(name, int(lo), int(hi)):
            self.pending.append("DELRANGE %s %d %d" % (name, int(lo), int(hi)))
            return True
        return False

    def addcmd(self, name):
        if self.state.addcmd(name):
            self.pending.append("ADDCMD " + name)
            return True
        return False

    def delcmd(self, name):
        if self.state.delcmd(name):
            self.pending.append("DELCMD " + name)
            return True
        return False

    # -- ups.status and ups.alarm, built word by word as NUT drivers do ---
    def status_init(self):
        self._status = []

    def status_set(self, word):
        if self._status is None:
            self._status = []
        for w in word.split():
            if self.ignorelb and w.upper() == "LB":
                continue
            if w not in self._status:
                self._status.append(w)

    def status_commit(self):
        words = list(self._status or [])
        if self.ignorelb and "LB" not in words and self._below_low():
            words.append("LB")
        if self.alarm_active and "ALARM" not in words:
            words = ["ALARM"] + words
        self.setinfo("ups.status", " ".join(words))
        self._status = None

    def _below_low(self):
        for val, low in (("battery.charge", "battery.charge.low"),
                         ("battery.runtime", "battery.runtime.low")):
            v, lo = self.getinfo(val), self.getinfo(low)
            try:
                if v is not None and lo is not None and float(v) < float(lo):
                    return True
            except ValueError:
                continue
        return False

    def alarm_init(self):
        self._alarm = []

    def alarm_set(self, text):
        if self._alarm is None:
            self._alarm = []
        if text not in self._alarm:
            self._alarm.append(text)

    def alarm_commit(self):
        if self._alarm:
            self.setinfo("ups.alarm", " ".join(self._alarm))
            self.alarm_active = True
        else:
            self.delinfo("ups.alarm")
            self.alarm_active = False

    # -- data freshness ---------------------------------------------------
    def dataok(self):
        if self.stale:
            self.stale = False
            self.pending.append("DATAOK")

    def datastale(self):
        if not self.stale:
            self.stale = True
            self.pending.append("DATASTALE")

    def take_pending(self):
        lines, self.pending = self.pending, []
        return lines

    def dump_lines(self):
        """The answer to DUMPALL, in NUT's order."""
        out = []
        if self.stale:
            out.append("DATASTALE")
        for v in self.state.sorted_vars():
            out.append('SETINFO %s "%s"' % (v.name, quote(v.value)))
            for e in v.enums:
                out.append('ADDENUM %s "%s"' % (v.name, quote(e)))
            for lo, hi in v.ranges:
                out.append("ADDRANGE %s %d %d" % (v.name, lo, hi))
            if v.aux:
                out.append("SETAUX %s %d" % (v.name, v.aux))
            if v.flags:
                out.append(" ".join(["SETFLAGS", v.name] + flags_to_words(v.flags)))
        for c in self.state.sorted_cmds():
            out.append("ADDCMD " + c)
        if not self.stale:
            out.append("DATAOK")
        out.append("DUMPDONE")
        return out


def parse_server_request(words):
    """Decode a server -> driver line into a tuple.

    ("PING",), ("DUMPALL",), ("INSTCMD", cmd, param_or_None, tracking_or_None),
    ("SET", var, value, tracking_or_None), ("LOGOUT",), or None if unknown.
    """
    if not words:
        return None
    cmd = words[0].upper()
    if cmd in ("PING", "DUMPALL", "LOGOUT", "NOBROADCAST", "BROADCAST"):
        return (cmd,)
    rest = words[1:]
    tracking = None
    if len(rest) >= 2 and rest[-2].upper() == "TRACKING":
        tracking = rest[-1]
        rest = rest[:-2]
    if cmd == "INSTCMD" and 1 <= len(rest) <= 2:
        return ("INSTCMD", rest[0], rest[1] if len(rest) == 2 else None, tracking)
    if cmd == "SET" and len(rest) == 2:
        return ("SET", rest[0], rest[1], tracking)
    return None
