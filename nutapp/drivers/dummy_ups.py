"""dummy-ups: a simulated UPS driven by a definition file.

``port`` names a ``.dev`` or ``.seq`` file (relative to the config
directory), in the upsc format with TIMER and ALARM lines; ``mode`` is
``dummy-once`` (default for .dev: read to the end, again when the file
changes), ``dummy-loop`` (default for .seq and other names: read over and
over) or ``dummy`` (the old name of dummy-loop). SET and INSTCMD are
accepted and reflected in the data, so clients can be tested against it.
"""

import os
import time

from nutapp import paths
from nutapp.core.dummy import looks_numeric, parse_definition
from nutapp.core.errors import ConfigError
from nutapp.drivers.base import (CommError, Driver, DriverError, STAT_HANDLED,
                                 STAT_INVALID, STAT_UNKNOWN)

# NUT's dummy-ups keeps at most this many characters of a value.
MAX_VALUE = 127

# What instant commands do to the simulated UPS: variable -> value.
_CMD_EFFECTS = {
    "load.off": {"ups.status": "OFF"},
    "load.on": {"ups.status": "OL"},
    "shutdown.return": {"ups.status": "OFF"},
    "shutdown.stayoff": {"ups.status": "OFF"},
    "beeper.enable": {"ups.beeper.status": "enabled"},
    "beeper.disable": {"ups.beeper.status": "disabled"},
    "beeper.mute": {"ups.beeper.status": "muted"},
    "test.battery.start": {"ups.test.result": "In progress"},
    "test.battery.start.quick": {"ups.test.result": "In progress"},
    "test.battery.start.deep": {"ups.test.result": "In progress"},
    "test.battery.stop": {"ups.test.result": "Aborted"},
}


class DummyUps(Driver):
    name = "dummy-ups"
    version = "0.15"
    options_help = {"mode": "dummy-once, dummy-loop or dummy (default from the file name)"}

    def __init__(self, upsname, options, dstate):
        Driver.__init__(self, upsname, options, dstate)
        port = options.get("port", "")
        if "@" in port:
            raise DriverError("dummy-ups repeater mode (port = ups@host) is not supported")
        self.path = port if os.path.isabs(port) else os.path.join(paths.confpath(), port)
        mode = options.get("mode")
        if mode is None:
            mode = "dummy-once" if port.endswith(".dev") else "dummy-loop"
        if mode not in ("dummy-once", "dummy-loop", "dummy"):
            raise DriverError("unsupported mode %r (dummy-once, dummy-loop or dummy)" % mode)
        self.mode = mode
        self.loop = mode != "dummy-once"
        options["mode"] = mode
        self.defn = None
        self.mtime = None
        self.pos = 0
        self.resume_at = None  # monotonic time when a TIMER pause ends
        self.alarms = []
        self.uses_alarms = False
        self.base_status = "OL"

    # -- file handling --------------------------------------------------------
    def _load(self):
        try:
            st = os.stat(self.path)
            with open(self.path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            raise CommError("can't read definition file %s: %s" % (self.path, e.strerror))
        try:
            self.defn = parse_definition(text, self.path)
        except ConfigError as e:
            raise CommError(str(e))
        self.mtime = st.st_mtime_ns
        self.uses_alarms = any(step[0] == "alarm" for step in self.defn.steps)
        self.pos = 0
        self.resume_at = None
        self._apply_annotations()

    def _apply_annotations(self):
        d = self.dstate
        for cmd in ["load.off"] + self.defn.cmds:
            d.addcmd(cmd)

    def _set_flags(self, name, value):
        d = self.dstate
        spec = self.defn.rw.get(name.lower()) if self.defn else None
        if spec is not None:
            if spec["type"] == "STRING":
                d.setflags(name, "RW", "STRING")
                d.setaux(name, spec["len"] or max(32, len(value)))
            else:
                d.setflags(name, "RW")
                for e in spec["enums"]:
                    d.addenum(name, e)
                for lo, hi in spec["ranges"]:
                    d.addrange(name, lo, hi)
        elif looks_numeric(value):
            d.setflags(name, "RW", "NUMBER")
        else:
            d.setflags(name, "RW", "STRING")
            d.setaux(name, max(32, len(value)))

    def _run_steps(self):
        """Apply steps until a TIMER or the end of the file."""
        d = self.dstate
        steps = self.defn.steps
        while self.pos < len(steps):
            step = steps[self.pos]
            self.pos += 1
            if step[0] == "timer":
                self.resume_at = time.monotonic() + step[1]
                return
            if step[0] == "alarm":
                if step[1] is None:
                    self.alarms = []
                elif step[1] not in self.alarms:
                    self.alarms.append(step[1])
                continue
            _, name, value = step
            value = value[:MAX_VALUE]
            if name.lower() == "ups.status":
                self.base_status = value
                if value:
                    self._commit_status()
                else:
                    d.delinfo(name)
            elif value == "":
                d.delinfo(name)
            else:
                d.setinfo(name, value)
                self._set_flags(name, value)
        if self.base_status:
            self._commit_status()
        self.resume_at = None

    def _commit_status(self):
        d = self.dstate
        if self.uses_alarms:
            # ALARM lines own ups.alarm; without them it is a plain variable.
            d.alarm_init()
            for a in self.alarms:
                d.alarm_set(a)
            d.alarm_commit()
        d.status_init()
        d.status_set(self.base_status)
        d.status_commit()

    # -- Driver interface -----------------------------------------------------
    async def open(self):
        d = self.dstate
        d.setinfo("ups.mfr", "Dummy Manufacturer")
        d.setinfo("ups.model", "Dummy UPS")
        self.base_status = "OL"
        self._commit_status()
        for name in ("ups.mfr", "ups.model", "ups.status"):
            d.setflags(name, "RW", "STRING")
            d.setaux(name, 32)
        self._load()
        self._run_steps()

    async def update(self):
        now = time.monotonic()
        if self.resume_at is not None:
            if now >= self.resume_at:
                self._run_steps()
            return
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as e:
            raise CommError("definition file %s vanished: %s" % (self.path, e.strerror))
        if mtime != self.mtime or self.loop:
            self._load()
            self._run_steps()

    async def wait(self, timeout):
        if self.resume_at is not None:
            timeout = max(0.05, min(timeout, self.resume_at - time.monotonic()))
        elif self.loop:
            timeout = min(timeout, 1.0)
        await Driver.wait(self, timeout)

    async def setvar(self, var, value):
        d = self.dstate
        if var.lower().startswith(("driver.", "server.")):
            return STAT_INVALID
        if var.lower() == "ups.status":
            self.base_status = value
            self._commit_status()
            return STAT_HANDLED
        if d.getinfo(var) is None:
            return STAT_UNKNOWN
        if value == "":
            d.delinfo(var)
        else:
            d.setinfo(var, value)
        return STAT_HANDLED

    async def instcmd(self, cmd, param=None):
        if not self.dstate.state.has_cmd(cmd):
            return STAT_UNKNOWN
        for var, value in _CMD_EFFECTS.get(cmd.lower(), {}).items():
            if var == "ups.status":
                self.base_status = value
                self._commit_status()
            else:
                self.dstate.setinfo(var, value)
        return STAT_HANDLED
