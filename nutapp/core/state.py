"""A UPS's state as NUT's server and drivers hold it.

Variables have a value, flags (RW, STRING, NUMBER), an aux value (the
maximum length of a STRING), and optional enum values and integer ranges.
Commands are a set of names. Names are case-insensitive and kept sorted
case-insensitively, as NUT's state tree does, and remember the spelling of
their first appearance.

`UpsState` is the passive store; `apply_sock_words` feeds it the driver
socket protocol (docs/sock-protocol.txt in NUT). `version` goes up on every
change, so readers can cache rendered replies.
"""

RW = 1
STRING = 2
NUMBER = 4

_FLAG_NAMES = (("RW", RW), ("STRING", STRING), ("NUMBER", NUMBER))


def flags_from_words(words):
    flags = 0
    for w in words:
        u = w.upper()
        for name, bit in _FLAG_NAMES:
            if u == name:
                flags |= bit
    return flags


def flags_to_words(flags):
    return [name for name, bit in _FLAG_NAMES if flags & bit]


class Var:
    __slots__ = ("name", "value", "flags", "aux", "enums", "ranges")

    def __init__(self, name, value):
        self.name = name
        self.value = value
        self.flags = 0
        self.aux = 0
        self.enums = []
        self.ranges = []


class UpsState:
    """Variables and commands of one UPS."""

    def __init__(self):
        self.vars = {}  # lower-case name -> Var
        self.cmds = {}  # lower-case name -> spelling
        self.version = 0
        self._sorted_vars = None
        self._sorted_cmds = None

    # -- reading ---------------------------------------------------------
    def get(self, name):
        """The Var called `name` (any case), or None."""
        return self.vars.get(name.lower())

    def getinfo(self, name):
        v = self.vars.get(name.lower())
        return None if v is None else v.value

    def has_cmd(self, name):
        return name.lower() in self.cmds

    def sorted_vars(self):
        if self._sorted_vars is None:
            keys = sorted(self.vars)
            self._sorted_vars = [self.vars[k] for k in keys]
        return self._sorted_vars

    def sorted_cmds(self):
        if self._sorted_cmds is None:
            self._sorted_cmds = [self.cmds[k] for k in sorted(self.cmds)]
        return self._sorted_cmds

    def _changed(self, structure=False):
        self.version += 1
        if structure:
            self._sorted_vars = None
            self._sorted_cmds = None

    def clear(self):
        self.vars = {}
        self.cmds = {}
        self._changed(True)

    # -- writing (NUT's state_* operations); each returns True on change --
    def setinfo(self, name, value):
        key = name.lower()
        v = self.vars.get(key)
        if v is None:
            self.vars[key] = Var(name, value)
            self._changed(True)
            return True
        if v.value == value:
            return False
        v.value = value
        self._changed()
        return True

    def delinfo(self, name):
        if self.vars.pop(name.lower(), None) is None:
            return False
        self._changed(True)
        return True

    def setflags(self, name, flags):
        v = self.get(name)
        if v is None or v.flags == flags:
            return False
        v.flags = flags
        self._changed()
        return True

    def setaux(self, name, aux):
        v = self.get(name)
        if v is None or v.aux == aux:
            return False
        v.aux = aux
        self._changed()
        return True

    def addenum(self, name, value):
        v = self.get(name)
        if v is None or value in v.enums:
            return False
        v.enums.append(value)
        self._changed()
        return True

    def delenum(self, name, value):
        v = self.get(name)
        if v is None or value not in v.enums:
            return False
        v.enums.remove(value)
        self._changed()
        return True

    def addrange(self, name, lo, hi):
        v = self.get(name)
        if v is None or lo > hi or (lo, hi) in v.ranges:
            return False
        v.ranges.append((lo, hi))
        self._changed()
        return True

    def delrange(self, name, lo, hi):
        v = self.get(name)
        if v is None or (lo, hi) not in v.ranges:
            return False
        v.ranges.remove((lo, hi))
        self._changed()
        return True

    def addcmd(self, name):
        key = name.lower()
        if key in self.cmds:
            return False
        self.cmds[key] = name
        self._changed(True)
        return True

    def delcmd(self, name):
        if self.cmds.pop(name.lower(), None) is None:
            return False
        self._changed(True)
        return True


def _int(word):
    try:
        return int(word)
    except ValueError:
        return None


def apply_sock_words(state, words):
    """Apply one state-changing line of the driver socket protocol.

    Returns True when the words were a state update this function knows
    (whether or not they changed anything), False otherwise: the caller
    handles the control words (DATAOK, DUMPDONE, PONG, TRACKING...).
    """
    n = len(words)
    if n < 2:
        return False
    cmd = words[0].upper()
    if cmd == "SETINFO" and n >= 3:
        state.setinfo(words[1], words[2])
    elif cmd == "DELINFO":
        state.delinfo(words[1])
    elif cmd == "ADDCMD":
        state.addcmd(words[1])
    elif cmd == "DELCMD":
        state.delcmd(words[1])
    elif cmd == "SETFLAGS":
        state.setflags(words[1], flags_from_words(words[2:]))
    elif cmd == "SETAUX" and n >= 3:
        aux = _int(words[2])
        if aux is not None:
            state.setaux(words[1], aux)
    elif cmd == "ADDENUM" and n >= 3:
        state.addenum(words[1], words[2])
    elif cmd == "DELENUM" and n >= 3:
        state.delenum(words[1], words[2])
    elif cmd in ("ADDRANGE", "DELRANGE") and n >= 4:
        lo, hi = _int(words[2]), _int(words[3])
        if lo is None or hi is None:
            return True
        if cmd == "ADDRANGE":
            state.addrange(words[1], lo, hi)
        else:
            state.delrange(words[1], lo, hi)
    else:
        return False
    return True
