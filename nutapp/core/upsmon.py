"""upsmon's decisions: the upsmon.conf parser and the shutdown state machine.

Theory of operation. upsmon watches one or more UPSes through NUT servers
and decides when this host must shut down. This module holds every rule
and no I/O: the adapter (nutapp/upsmon/) polls the servers and feeds each
result in with the time it was taken; the machine answers with `Action`s
(send a notification, set FSD on a UPS, write the power-down flag and run
the shutdown command...). Time is whatever clock the caller passes in, in
seconds, so tests replay hours of outage without sleeping.

The rules are NUT's (clients/upsmon.c):

- Each MONITOR line brings a power value (how many of this host's power
  supplies the UPS feeds). After each round of polls the values of the
  UPSes that are not critical are added up; below MINSUPPLIES the host
  shuts down.
- A UPS is critical when it shows FSD; when it is on battery with a low
  battery (OB LB), held for OBLBDURATION when that is set, and, for a
  secondary, once the primary has had HOSTSYNC seconds to set FSD and has
  not; when it has been OFF for longer than OFFDURATION (OFFDURATION >= 0);
  when contact is lost and it was last seen on bypass, calibrating, off,
  with an alarm (ALARMCRITICAL), or overloaded for OVERDURATION (>= 0).
  A UPS last seen on battery whose server has not answered for DEADTIME
  seconds is taken as low on battery too. OB LB while calibrating is not
  critical.
- Shutting down, a primary sets FSD on every UPS it is primary for, waits
  until the secondaries have logged out (NUMLOGINS at most 1) or HOSTSYNC
  has passed, then, like a secondary, sends the SHUTDOWN notification,
  waits FINALDELAY, writes POWERDOWNFLAG and runs SHUTDOWNCMD. Our GPIO
  power-cut line, when configured, is driven after that.

The state machine's phases: "monitor" (polling), "hostsync" (primary
waiting for its secondaries), "final" (FINALDELAY running), "done" (the
shutdown was handed to the privileged side).
"""

from .errors import ConfigError, ParseError
from .parseconf import parse_text

SDMAGIC = "upsmon-shutdown-file"
DEFAULT_PORT = 3493

# -- notifications -----------------------------------------------------------

IGNORE, SYSLOG, WALL, EXEC = 1, 2, 4, 8
FLAG_NAMES = {"IGNORE": IGNORE, "SYSLOG": SYSLOG, "WALL": WALL, "EXEC": EXEC}
DEFAULT_FLAGS = SYSLOG | WALL

# Notification types (NUT's names, so NOTIFYCMD scripts and upssched work
# unchanged) with our own default texts. "%s" is the UPS; a second "%s" is
# the extra detail (alarm text, unknown status words). "{...}" fields are
# filled from the configuration when it is loaded, so each message says
# what happens next and when.
NOTIFY_TYPES = (
    ("ONLINE", "UPS %s is on mains power again; no shutdown is pending because of it"),
    ("ONBATT", "UPS %s lost mains power and runs on battery; this host keeps running "
               "and shuts down only if the battery gets low (checks every {pollfreqalert} s)"),
    ("LOWBATT", "UPS %s reports a low battery; hosts that depend on it start shutting "
                "down now"),
    ("FSD", "UPS %s is in forced shutdown (FSD); every host it feeds shuts down now"),
    ("COMMOK", "UPS %s: contact with its server is back; monitoring resumes"),
    ("COMMBAD", "UPS %s: contact with its server is lost; if it was on battery it counts "
                "as low battery after DEADTIME ({deadtime} s)"),
    ("SHUTDOWN", "Power failure: this host shuts down in FINALDELAY ({finaldelay} s)"),
    ("SHUTDOWN_HOSTSYNC", "Power failure: FSD is set; waiting up to HOSTSYNC ({hostsync} s) "
                          "for the secondary hosts to log out, then this host shuts down"),
    ("REPLBATT", "UPS %s says its battery needs replacing; next reminder in "
                 "RBWARNTIME ({rbwarntime} s)"),
    ("NOCOMM", "UPS %s has been unreachable for more than NOCOMMWARNTIME ({nocommwarntime} s); "
               "check its server and the network"),
    ("NOPARENT", "upsmon's privileged process died: this host can no longer shut itself "
                 "down on a power failure; restart upsmon"),
    ("CAL", "UPS %s is calibrating its battery; a low battery during calibration does "
            "not shut hosts down"),
    ("NOTCAL", "UPS %s finished calibrating"),
    ("OFF", "UPS %s is switched off; if it stays off for OFFDURATION ({offduration} s) "
            "its hosts count it as lost"),
    ("NOTOFF", "UPS %s is no longer switched off"),
    ("BYPASS", "UPS %s is on bypass: its load is not protected; losing contact with it "
               "now counts as critical"),
    ("NOTBYPASS", "UPS %s is no longer on bypass"),
    ("ECO", "UPS %s runs in ECO (high efficiency) mode"),
    ("NOTECO", "UPS %s left ECO mode"),
    ("ALARM", "UPS %s raised an alarm: %s"),
    ("NOTALARM", "UPS %s has no alarm any more"),
    ("OVER", "UPS %s is overloaded; reduce its load"),
    ("NOTOVER", "UPS %s is no longer overloaded"),
    ("TRIM", "UPS %s is lowering (trimming) a high mains voltage"),
    ("NOTTRIM", "UPS %s stopped trimming the mains voltage"),
    ("BOOST", "UPS %s is raising (boosting) a low mains voltage"),
    ("NOTBOOST", "UPS %s stopped boosting the mains voltage"),
    ("OTHER", "UPS %s reports status words upsmon does not act on: %s"),
    ("NOTOTHER", "UPS %s no longer reports unknown status words"),
    ("SUSPEND_STARTING", "This host is going to sleep; UPS monitoring pauses"),
    ("SUSPEND_FINISHED", "This host woke up; UPS monitoring resumes"),
)
NOTIFY_NAMES = tuple(n for n, _ in NOTIFY_TYPES)

# XXX: ECO is followed as a status word only; later NUT releases also read
# ups.mode.buzzwords for it, which this version does not poll.
# Status words upsmon knows but takes no action on.
_QUIET_WORDS = ("HB", "CHRG", "DISCHRG")
# Words with a NOTIFY/NOT... pair, tracked the same way.
_PAIRED = ("CAL", "OFF", "BYPASS", "ECO", "ALARM", "OVER", "TRIM", "BOOST")


def format_message(fmt, ups, extra=None):
    """Fill a NOTIFYMSG: the first %s is the UPS, the second the detail.

    Only "%s" is special (a user's message may hold any other "%").
    """
    parts = fmt.split("%s")
    if len(parts) == 1:
        return fmt
    out = parts[0] + (ups or "")
    if len(parts) > 2:
        out += parts[1] + (extra or "") + "%s".join(parts[2:])
    else:
        out += parts[1]
    return out


# -- configuration -----------------------------------------------------------

class Monitor:
    """One MONITOR line: `<ups>[@host[:port]] <powervalue> <user> <pass> <type>`."""

    def __init__(self, system, upsname, host, port, powervalue, user, password, primary):
        self.system = system
        self.upsname = upsname
        self.host = host
        self.port = port
        self.powervalue = powervalue
        self.user = user
        self.password = password
        self.primary = primary

    def __repr__(self):
        return "Monitor(%s, %d, %s)" % (self.system, self.powervalue,
                                        "primary" if self.primary else "secondary")


def split_system(spec):
    """`ups[@host[:port]]` -> (ups, host, port); IPv6 hosts go in [brackets]."""
    ups, at, hostpart = spec.rpartition("@")
    if not at:
        ups, hostpart = spec, ""
    host, port = "localhost", DEFAULT_PORT
    if hostpart:
        if hostpart.startswith("["):
            end = hostpart.find("]")
            if end < 0:
                raise ValueError("unclosed [ in host")
            host, rest = hostpart[1:end], hostpart[end + 1:]
            if rest:
                if not rest.startswith(":"):
                    raise ValueError("garbage after ]")
                port = int(rest[1:])
        elif hostpart.count(":") == 1:
            host, p = hostpart.split(":")
            port = int(p)
        else:
            host = hostpart
    if not ups or not host or not 0 < port < 65536:
        raise ValueError("bad UPS name")
    return ups, host, port


# Our own upsmon.conf directives for a Raspberry Pi's GPIO lines.
GPIO_LEDS = {
    # state: (directive, default pattern (on s, off s) or None = steady)
    "online": ("GPIO_LED_ONLINE", None),
    "onbatt": ("GPIO_LED_ONBATT", (1.0, 1.0)),
    "lowbatt": ("GPIO_LED_LOWBATT", (0.2, 0.2)),
    "commbad": ("GPIO_LED_COMMBAD", (0.1, 1.9)),
}


class GpioLine:
    """A GPIO directive: `pin`, `active_high`, and per kind `pattern`/`hold`/`pull_up`.

    `pattern` is a tuple of seconds: (on, off, on, ...) for a pulse train or
    a blinking LED; None means steady (an LED lit, a power-cut level held).
    """

    def __init__(self, pin, active_high=True, pattern=None, hold=0.0, pull_up=True):
        self.pin = pin
        self.active_high = active_high
        self.pattern = pattern
        self.hold = hold
        self.pull_up = pull_up

    def __repr__(self):
        return "GpioLine(%r, active_high=%r, pattern=%r)" % (self.pin, self.active_high,
                                                             self.pattern)


class Config:
    """upsmon.conf, parsed. Defaults are NUT's."""

    def __init__(self):
        self.filename = None
        self.monitors = []
        self.minsupplies = 1
        self.pollfreq = 5
        self.pollfreqalert = 5
        self.deadtime = 15
        self.hostsync = 15
        self.finaldelay = 5
        self.rbwarntime = 43200
        self.nocommwarntime = 300
        self.offduration = 30
        self.overduration = -1
        self.oblbduration = 0
        self.alarmcritical = True
        self.shutdowncmd = None      # a /bin/sh command line
        self.shutdownexit = 0
        self.notifycmd = None        # argv list; the message is appended
        self.notifymsg = {}          # type -> user's format
        self.notifyflags = {}        # type -> flags
        self.powerdownflag = None
        self.run_as_user = None
        self.certpath = None
        self.certfile = None
        self.certident = None        # (name, password)
        self.certhosts = {}          # host[:port] -> (certname, verify, force)
        self.certverify = False
        self.forcessl = False
        self.debug_min = 0
        self.gpio_powercut = None
        self.gpio_leds = {}          # state -> GpioLine
        self.gpio_shutdown_button = None
        self.warnings = []           # "file:line: text" for lines NUT would only warn on

    def flags(self, ntype):
        return self.notifyflags.get(ntype, DEFAULT_FLAGS)

    def message(self, ntype):
        """The format for a notification: the user's NOTIFYMSG, else ours."""
        if ntype in self.notifymsg:
            return self.notifymsg[ntype]
        for name, text in NOTIFY_TYPES:
            if name == ntype:
                return _fill(text, self)
        return ntype + " %s"

    def total_power(self):
        return sum(m.powervalue for m in self.monitors)

    def primaries(self):
        return [m for m in self.monitors if m.primary]


def _fill(text, conf):
    if "{" not in text:
        return text
    for key in ("pollfreqalert", "deadtime", "finaldelay", "hostsync", "rbwarntime",
                "nocommwarntime", "offduration"):
        text = text.replace("{%s}" % key, str(getattr(conf, key)))
    return text


_INT_SETTINGS = {
    # directive: (attribute, lowest allowed or None)
    "MINSUPPLIES": ("minsupplies", 0),
    "POLLFREQ": ("pollfreq", 1),
    "POLLFREQALERT": ("pollfreqalert", 1),
    "DEADTIME": ("deadtime", 0),
    "HOSTSYNC": ("hostsync", 0),
    "FINALDELAY": ("finaldelay", 0),
    "RBWARNTIME": ("rbwarntime", 0),
    "NOCOMMWARNTIME": ("nocommwarntime", 0),
    "OFFDURATION": ("offduration", None),
    "OVERDURATION": ("overduration", None),
    "OBLBDURATION": ("oblbduration", None),
    "DEBUG_MIN": ("debug_min", 0),
}
_BOOL_SETTINGS = {"CERTVERIFY": "certverify", "FORCESSL": "forcessl",
                  "ALARMCRITICAL": "alarmcritical"}
_PATH_SETTINGS = {"POWERDOWNFLAG": "powerdownflag", "RUN_AS_USER": "run_as_user",
                  "CERTPATH": "certpath", "CERTFILE": "certfile"}
# Directives of later NUT releases that we accept and do not act on.
_ACCEPTED = ("POLLFAIL_LOG_THROTTLE_MAX",)


def parse_config(text, filename="upsmon.conf"):
    """Parse upsmon.conf text into a Config; ConfigError names file:line."""
    try:
        lines = parse_text(text)
    except ParseError as e:
        raise ConfigError(str(e), filename, getattr(e, "lineno", None))
    conf = Config()
    conf.filename = filename
    for lineno, words in lines:
        try:
            _directive(conf, words, filename, lineno)
        except ValueError as e:
            raise ConfigError(str(e), filename, lineno)
    _check(conf)
    return conf


def _directive(conf, words, filename, lineno):
    key, args = words[0], words[1:]
    if key == "MONITOR":
        _monitor(conf, args)
    elif key in _INT_SETTINGS:
        attr, low = _INT_SETTINGS[key]
        value = _int(key, _one(key, args))
        if low is not None and value < low:
            raise ValueError("%s must be at least %d, not %d" % (key, low, value))
        if key == "OBLBDURATION" and value < 1:
            value = 0
        setattr(conf, attr, value)
    elif key in _BOOL_SETTINGS:
        value = _one(key, args)
        if value not in ("0", "1"):
            raise ValueError("%s takes 0 or 1, not %r" % (key, value))
        setattr(conf, _BOOL_SETTINGS[key], value == "1")
    elif key in _PATH_SETTINGS:
        setattr(conf, _PATH_SETTINGS[key], _one(key, args))
    elif key == "SHUTDOWNCMD":
        conf.shutdowncmd = _shell_line(key, args)
    elif key == "NOTIFYCMD":
        if not args:
            raise ValueError("NOTIFYCMD needs a program")
        conf.notifycmd = list(args)
    elif key == "NOTIFYMSG":
        if len(args) != 2:
            raise ValueError('NOTIFYMSG takes a type and one quoted message: '
                             'NOTIFYMSG ONBATT "UPS %s on battery"')
        conf.notifymsg[_ntype(args[0])] = args[1]
    elif key == "NOTIFYFLAG":
        if len(args) != 2:
            raise ValueError("NOTIFYFLAG takes a type and flags: NOTIFYFLAG ONBATT SYSLOG+WALL")
        conf.notifyflags[_ntype(args[0])] = _flags(args[1])
    elif key == "CERTIDENT":
        if len(args) != 2:
            raise ValueError("CERTIDENT takes a certificate name and a password")
        conf.certident = (args[0], args[1])
    elif key == "CERTHOST":
        if len(args) != 4 or args[2] not in ("0", "1") or args[3] not in ("0", "1"):
            raise ValueError('CERTHOST takes host, certificate name, certverify 0|1, '
                             'forcessl 0|1: CERTHOST "ups.example:3493" "ups.example" 1 1')
        conf.certhosts[args[0]] = (args[1], args[2] == "1", args[3] == "1")
    elif key == "SHUTDOWNEXIT":
        conf.shutdownexit = _shutdownexit(_one(key, args))
    elif key in _ACCEPTED:
        _one(key, args)
    elif key.startswith("GPIO_"):
        _gpio(conf, key, args)
    else:
        conf.warnings.append("%s:%d: unknown directive %s (ignored)" % (filename, lineno, key))


def _one(key, args):
    if len(args) != 1:
        raise ValueError("%s takes exactly one value, got %d" % (key, len(args)))
    return args[0]


def _int(key, word):
    try:
        return int(word)
    except ValueError:
        raise ValueError("%s needs a whole number, not %r" % (key, word))


def _monitor(conf, args):
    if len(args) == 4:
        raise ValueError("MONITOR line without a user name (old style); write "
                         "MONITOR <ups>@<host> <powervalue> <user> <password> primary|secondary")
    if len(args) != 5:
        raise ValueError("MONITOR takes 5 values: <ups>[@<host>[:<port>]] <powervalue> "
                         "<user> <password> primary|secondary (got %d)" % len(args))
    system, pv, user, password, kind = args
    try:
        upsname, host, port = split_system(system)
    except ValueError:
        raise ValueError("MONITOR: %r is not <ups>[@<host>[:<port>]]" % system)
    power = _int("MONITOR power value", pv)
    if power < 0:
        raise ValueError("MONITOR power value must be 0 or more, not %d" % power)
    kind = kind.lower()
    if kind not in ("primary", "master", "secondary", "slave"):
        raise ValueError("MONITOR type must be primary or secondary, not %r" % args[4])
    for m in conf.monitors:
        if m.system == system:
            raise ValueError("UPS %s is monitored twice" % system)
    conf.monitors.append(Monitor(system, upsname, host, port, power, user, password,
                                 kind in ("primary", "master")))


def _shell_line(key, args):
    """SHUTDOWNCMD: the first word is a shell command line, later words are
    single arguments appended quoted."""
    if not args:
        raise ValueError("%s needs a command" % key)
    return " ".join([args[0]] + [_shquote(a) for a in args[1:]])


def _shquote(word):
    return "'" + word.replace("'", "'\"'\"'") + "'"


def _ntype(name):
    up = name.upper()
    if up not in NOTIFY_NAMES:
        raise ValueError("unknown notification type %r (one of: %s)"
                         % (name, " ".join(NOTIFY_NAMES)))
    return up


def _flags(text):
    flags = 0
    for word in text.split("+"):
        if word not in FLAG_NAMES:
            raise ValueError("unknown notify flag %r (use SYSLOG, WALL, EXEC joined "
                             "with +, or IGNORE)" % word)
        flags |= FLAG_NAMES[word]
    return flags


def _shutdownexit(word):
    low = word.lower()
    if low in ("on", "yes", "true"):
        return 0
    if low in ("off", "no", "false"):
        return -1
    return _int("SHUTDOWNEXIT", word)


def _gpio(conf, key, args):
    if not args:
        raise ValueError("%s needs a pin number" % key)
    pin = _pin(args[0])
    opts = [a.lower() for a in args[1:]]
    active_high = True
    if "active_low" in opts:
        active_high = False
        opts.remove("active_low")
    if key == "GPIO_POWERCUT":
        if len(opts) != 1:
            raise ValueError("GPIO_POWERCUT takes a pin and level or pulse:<ms>[,<ms>...] "
                             "(e.g. GPIO_POWERCUT 26 pulse:4000)")
        if opts[0] == "level":
            pattern = None
        elif opts[0].startswith("pulse:"):
            pattern = _pattern(key, opts[0][6:])
        else:
            raise ValueError("GPIO_POWERCUT mode must be level or pulse:<ms>[,<ms>...], "
                             "not %r" % opts[0])
        conf.gpio_powercut = GpioLine(pin, active_high, pattern)
        return
    if key == "GPIO_SHUTDOWN_BUTTON":
        hold, pull_up = 0.0, True
        for o in opts:
            if o.startswith("hold:"):
                hold = _pattern(key, o[5:])[0]
            elif o == "pull_down":
                pull_up = False
            elif o == "pull_up":
                pull_up = True
            else:
                raise ValueError("GPIO_SHUTDOWN_BUTTON options are hold:<ms>, pull_up, "
                                 "pull_down; not %r" % o)
        conf.gpio_shutdown_button = GpioLine(pin, True, None, hold, pull_up)
        return
    for state, (directive, default) in GPIO_LEDS.items():
        if key == directive:
            pattern = default
            for o in opts:
                if o == "steady":
                    pattern = None
                elif o.startswith("blink:"):
                    pattern = _pattern(key, o[6:])
                    if len(pattern) != 2:
                        raise ValueError("%s blink takes <on ms>,<off ms>" % key)
                else:
                    raise ValueError("%s options are steady, blink:<on ms>,<off ms>, "
                                     "active_low; not %r" % (key, o))
            conf.gpio_leds[state] = GpioLine(pin, active_high, pattern)
            return
    raise ValueError("unknown GPIO directive %s (GPIO_POWERCUT, GPIO_SHUTDOWN_BUTTON, %s)"
                     % (key, ", ".join(d for d, _ in GPIO_LEDS.values())))


def _pin(word):
    if word.isdigit():
        return int(word)
    if word[:4].upper() in ("GPIO", "BCM") or word[:5].upper() in ("BOARD", "WPI"):
        return word.upper()
    raise ValueError("%r is not a GPIO pin (a BCM number like 26, or GPIO26, BOARD37)" % word)


def _pattern(key, text):
    out = []
    for part in text.split(","):
        try:
            ms = int(part)
        except ValueError:
            raise ValueError("%s: %r is not a time in milliseconds" % (key, part))
        if ms <= 0:
            raise ValueError("%s: times must be positive milliseconds" % key)
        out.append(ms / 1000.0)
    return tuple(out)


def _check(conf):
    """Settings that only make sense together."""
    total = conf.total_power()
    if total < conf.minsupplies:
        raise ConfigError("MINSUPPLIES is %d but the MONITOR power values add up to %d: "
                          "this host could never count as powered; add MONITOR lines or "
                          "lower MINSUPPLIES" % (conf.minsupplies, total), conf.filename)
    if conf.certverify and not conf.certpath:
        raise ConfigError("CERTVERIFY 1 needs CERTPATH (the CA certificates to check the "
                          "server against)", conf.filename)
    for host, (_, verify, _) in conf.certhosts.items():
        if verify and not conf.certpath:
            raise ConfigError("CERTHOST %s verifies the certificate but no CERTPATH is set"
                              % host, conf.filename)


# -- the state machine -------------------------------------------------------

class Action:
    """Something the adapter must do.

    kind: "notify" (ntype, ups, message, flags), "log" (level, message),
    "set_fsd" (ups), "shutdown" (write POWERDOWNFLAG, run SHUTDOWNCMD, drive
    the power-cut line; message says why).
    """

    def __init__(self, kind, ups=None, ntype=None, message=None, flags=0, level=None):
        self.kind = kind
        self.ups = ups
        self.ntype = ntype
        self.message = message
        self.flags = flags
        self.level = level

    def __repr__(self):
        if self.kind == "notify":
            return "<notify %s %s>" % (self.ntype, self.ups)
        if self.kind == "log":
            return "<log %s: %s>" % (self.level, self.message)
        return "<%s %s>" % (self.kind, self.ups or "")

    def __eq__(self, other):
        return (isinstance(other, Action) and self.kind == other.kind and self.ups == other.ups
                and self.ntype == other.ntype)


class UpsTrack:
    """What upsmon knows of one UPS (NUT's utype_t)."""

    def __init__(self, monitor):
        self.monitor = monitor
        self.name = monitor.system
        self.flags = set()          # OL OB LB FSD CAL OFF BYPASS ECO ALARM OVER TRIM BOOST
        self.other = ()             # status words we do not act on, sorted
        self.alarm = None
        self.comm = None            # None: never reached; True / False
        self.line = None            # None until first OL/OB; then "OL"/"OB"
        self.offstate = False
        self.lastpoll = None
        self.lost_since = None
        self.lastnoncrit = None
        self.lastrbwarn = None
        self.lastncwarn = None
        self.fsd_notified = False
        self.offsince = None
        self.oblbsince = None
        self.oversince = None
        self.critical = None        # reason string while critical
        self.pending = None         # what a not-yet-critical OB LB waits for


MONITOR, HOSTSYNC, FINAL, DONE = "monitor", "hostsync", "final", "done"


class Upsmon:
    """The decisions of upsmon for one configuration.

    Feed `poll_ok`/`poll_failed` for each UPS, then `recalc` once per round;
    `user_fsd` for `upsmon -c fsd` or a shutdown button; during the
    shutdown, `fsd_set`, `numlogins` and `tick`. Each returns a list of
    Actions. `interval` says how long to wait before the next call.
    """

    def __init__(self, config):
        self.config = config
        self.ups = [UpsTrack(m) for m in config.monitors]
        self.phase = MONITOR
        self.reason = None
        self.hostsync_start = None
        self.hostsync_notified = False
        self.final_at = None
        self.parent_warned = None

    def reconfigure(self, config):
        """A reloaded upsmon.conf: UPSes still monitored keep what we know."""
        old = {}
        for u in self.ups:
            old[u.name] = u
        tracks = []
        for m in config.monitors:
            u = old.get(m.system)
            if u is None:
                u = UpsTrack(m)
            else:
                u.monitor = m
            tracks.append(u)
        self.config = config
        self.ups = tracks

    # -- helpers ---------------------------------------------------------
    def track(self, name):
        for u in self.ups:
            if u.name == name:
                return u
        raise KeyError(name)

    def _notify(self, out, ntype, ups=None, extra=None):
        msg = format_message(self.config.message(ntype), ups, extra)
        out.append(Action("notify", ups=ups, ntype=ntype, message=msg,
                          flags=self.config.flags(ntype)))

    @staticmethod
    def _log(out, level, message):
        out.append(Action("log", level=level, message=message))

    # -- polling ---------------------------------------------------------
    def poll_ok(self, name, now, status, alarm=None):
        """A successful `GET VAR <ups> ups.status` (status as the server sent it)."""
        u = self.track(name)
        out = []
        words = [w.upper() for w in status.split()]
        if not words:
            return self.poll_failed(name, now, "empty ups.status")
        self._alive(u, now, out)
        was_oblb = "OB" in u.flags and "LB" in u.flags and "CAL" not in u.flags

        if "LB" not in words:
            u.flags.discard("LB")
        if "FSD" not in words:
            u.flags.discard("FSD")
            u.fsd_notified = False
        for w in _PAIRED:
            if w not in words and w in u.flags:
                u.flags.discard(w)
                self._notify(out, "NOT" + w, u.name)
        if "OFF" not in words:
            u.offsince, u.offstate = None, False
        if "OVER" not in words:
            u.oversince = None

        other = []
        for w in words:
            if w == "OL":
                if u.line != "OL":
                    if u.line is not None:
                        self._notify(out, "ONLINE", u.name)
                    u.line = "OL"
                    u.flags.add("OL")
                    u.flags.discard("OB")
            elif w == "OB":
                if u.line != "OB":
                    u.line = "OB"
                    self._notify(out, "ONBATT", u.name)
                    u.flags.add("OB")
                    u.flags.discard("OL")
            elif w == "LB":
                if "LB" not in u.flags:
                    self._notify(out, "LOWBATT", u.name)
                    u.flags.add("LB")
            elif w == "RB":
                if u.lastrbwarn is None or now - u.lastrbwarn > self.config.rbwarntime:
                    self._notify(out, "REPLBATT", u.name)
                    u.lastrbwarn = now
            elif w == "FSD":
                if "FSD" not in u.flags:
                    if not u.fsd_notified:
                        u.fsd_notified = True
                        self._notify(out, "FSD", u.name)
                    u.flags.add("FSD")
            elif w == "OFF":
                self._off(u, now, out)
            elif w == "ALARM":
                if "ALARM" not in u.flags or alarm != u.alarm:
                    self._notify(out, "ALARM", u.name, alarm or "no details (ups.alarm unset)")
                    u.flags.add("ALARM")
                u.alarm = alarm
            elif w in _PAIRED:
                if w not in u.flags:
                    u.flags.add(w)
                    self._notify(out, w, u.name)
                if w == "OVER" and u.oversince is None:
                    u.oversince = now
            elif w in _QUIET_WORDS:
                pass
            else:
                if w not in other:
                    other.append(w)
        other = tuple(sorted(other))
        if other != u.other:
            if other:
                self._notify(out, "OTHER", u.name, " ".join(other))
            else:
                self._notify(out, "NOTOTHER", u.name)
            u.other = other
        if "ALARM" not in words:
            u.alarm = None

        # The last poll at which the UPS was not (yet) OB LB: a secondary
        # gives its primary HOSTSYNC seconds from there to set FSD.
        if not was_oblb or "OB" not in u.flags or "LB" not in u.flags or "CAL" in u.flags:
            u.lastnoncrit = now
        return out

    def _off(self, u, now, out):
        off = self.config.offduration
        if "OFF" in u.flags:
            if u.offsince is None:
                u.offsince = now
            elif off > 0 and now - u.offsince > off and not u.offstate:
                u.offstate = True
                self._log(out, "warning", "UPS %s has been off for %d s (OFFDURATION %d): "
                          "counting it as not feeding its hosts" % (u.name, now - u.offsince, off))
            return
        u.offsince = now
        u.flags.add("OFF")
        self._notify(out, "OFF", u.name)
        if off == 0:
            u.offstate = True

    def _alive(self, u, now, out):
        u.lastpoll = now
        if u.comm is False:
            self._notify(out, "COMMOK", u.name)
        u.comm = True
        u.lastncwarn = None

    def poll_failed(self, name, now, why):
        """The server could not be reached or would not answer for this UPS."""
        u = self.track(name)
        out = []
        if u.comm is not False:
            u.comm = False
            u.lost_since = now
            self._log(out, "error", "UPS %s: poll failed (%s); %s" % (
                u.name, why, self._lost_consequence(u)))
            self._notify(out, "COMMBAD", u.name)
            return out
        since = u.lastpoll if u.lastpoll is not None else u.lost_since
        nocomm = self.config.nocommwarntime
        if since is not None and now - since < nocomm:
            return out
        if u.lastncwarn is None or now - u.lastncwarn > nocomm:
            self._notify(out, "NOCOMM", u.name)
            u.lastncwarn = now
        return out

    def _lost_consequence(self, u):
        if "OB" in u.flags:
            return ("it was last seen on battery, so it counts as low on battery "
                    "after DEADTIME (%d s)" % self.config.deadtime)
        return "it was last seen on mains power; retrying every %d s" % self.config.pollfreq

    # -- decisions -------------------------------------------------------
    def critical_reason(self, u, now):
        """Why this UPS is critical now, or None. Updates OB LB timers."""
        conf = self.config
        if "FSD" in u.flags:
            return "forced shutdown (FSD) is set"
        if u.comm is False:
            if "OVER" in u.flags and conf.overduration >= 0:
                if u.oversince is None or now - u.oversince >= conf.overduration:
                    return ("contact lost while overloaded for OVERDURATION (%d s)"
                            % conf.overduration)
            if "ALARM" in u.flags and conf.alarmcritical:
                return "contact lost while it had an alarm (ALARMCRITICAL is on)"
            if "CAL" in u.flags:
                return "contact lost while calibrating"
            if "BYPASS" in u.flags:
                return "contact lost while on bypass"
            if u.offstate or (conf.offduration >= 0 and "OFF" in u.flags):
                return "contact lost while switched off"
        if "OFF" in u.flags and conf.offduration >= 0 and u.offstate:
            return "switched off for longer than OFFDURATION (%d s)" % conf.offduration
        if "OB" not in u.flags or "LB" not in u.flags:
            u.oblbsince = None
            return None
        if "CAL" in u.flags:
            return None
        if conf.oblbduration > 0:
            if u.oblbsince is None:
                u.oblbsince = now
            if now - u.oblbsince < conf.oblbduration:
                return None
        if u.monitor.primary:
            return "on battery with a low battery"
        if now - u.lastnoncrit > conf.hostsync:
            return ("on battery with a low battery, and its primary has not set FSD "
                    "within HOSTSYNC (%d s)" % conf.hostsync)
        return None

    def recalc(self, now):
        """After a round of polls: add up the power of healthy UPSes."""
        out = []
        if self.phase != MONITOR:
            return out
        total = 0
        for u in self.ups:
            if u.lastpoll is not None and now - u.lastpoll > self.config.deadtime \
                    and "OB" in u.flags and "LB" not in u.flags:
                u.flags.add("LB")
                self._log(out, "warning", "UPS %s: no answer for more than DEADTIME (%d s) "
                          "while on battery: counting it as low on battery"
                          % (u.name, self.config.deadtime))
            reason = self.critical_reason(u, now)
            note = None if reason else self._pending(u, now)
            if note and note != u.pending:
                self._log(out, "warning", note)
            u.pending = note
            if reason and reason != u.critical:
                self._log(out, "warning", "UPS %s is critical: %s" % (u.name, reason))
            elif not reason and u.critical:
                self._log(out, "info", "UPS %s is no longer critical" % u.name)
            u.critical = reason
            if not reason:
                total += u.monitor.powervalue
        if total < self.config.minsupplies:
            crit = ", ".join("%s (%s)" % (u.name, u.critical) for u in self.ups if u.critical)
            why = ("power value %d is below MINSUPPLIES %d; critical: %s"
                   % (total, self.config.minsupplies, crit or "none"))
            out.extend(self._force_shutdown(now, why))
        return out

    def _pending(self, u, now):
        """What an OB LB UPS that is not critical yet is waiting for."""
        if "OB" not in u.flags or "LB" not in u.flags:
            return None
        if "CAL" in u.flags:
            return ("UPS %s is on battery with a low battery while calibrating: not acting "
                    "on it until the calibration ends" % u.name)
        conf = self.config
        if conf.oblbduration > 0 and u.oblbsince is not None \
                and now - u.oblbsince < conf.oblbduration:
            return ("UPS %s is on battery with a low battery: it counts as critical after "
                    "OBLBDURATION (%d s) unless the battery recovers"
                    % (u.name, conf.oblbduration))
        if not u.monitor.primary:
            return ("UPS %s is on battery with a low battery: waiting up to HOSTSYNC (%d s) "
                    "for its primary to set FSD, then it counts as critical"
                    % (u.name, conf.hostsync))
        return None

    def user_fsd(self, now, who="an operator"):
        """`upsmon -c fsd`, or the shutdown button."""
        if self.phase != MONITOR:
            return []
        return self._force_shutdown(now, "forced shutdown requested by %s" % who)

    def _force_shutdown(self, now, why):
        out = []
        self.reason = why
        primaries = [u for u in self.ups if u.monitor.primary]
        if primaries:
            self._log(out, "critical", "Power-fail shutdown: %s; setting FSD on %s, then "
                      "waiting up to HOSTSYNC (%d s) for secondaries to log out"
                      % (why, ", ".join(u.name for u in primaries), self.config.hostsync))
            for u in primaries:
                out.append(Action("set_fsd", ups=u.name))
            self.phase = HOSTSYNC
            self.hostsync_start = now
            self.hostsync_notified = False
            return out
        self._log(out, "critical", "Power-fail shutdown: %s; this host is a secondary "
                  "and shuts down now" % why)
        out.extend(self._final(now))
        return out

    def fsd_set(self, name, now):
        """The server accepted our FSD for this UPS."""
        u = self.track(name)
        out = []
        if not u.fsd_notified:
            u.fsd_notified = True
            self._notify(out, "FSD", u.name)
        return out

    def numlogins(self, counts, now):
        """During HOSTSYNC: {ups: NUMLOGINS or None} for the UPSes we are primary for."""
        out = []
        if self.phase != HOSTSYNC:
            return out
        known = [n for n in counts.values() if n is not None]
        most = max(known) if known else 0
        if most <= 1:
            self._log(out, "info", "All secondaries have logged out; shutting down")
            out.extend(self._final(now))
            return out
        if now - self.hostsync_start > self.config.hostsync:
            self._log(out, "warning", "HOSTSYNC (%d s) passed with %d client(s) still logged "
                      "in on a UPS; shutting down without them"
                      % (self.config.hostsync, most - 1))
            out.extend(self._final(now))
            return out
        if not self.hostsync_notified:
            self.hostsync_notified = True
            self._notify(out, "SHUTDOWN_HOSTSYNC")
        return out

    def _final(self, now):
        out = []
        self.phase = FINAL
        self.final_at = now + self.config.finaldelay
        self._notify(out, "SHUTDOWN")
        out.extend(self.tick(now))
        return out

    def tick(self, now):
        """Advance timers: FINALDELAY, HOSTSYNC without answers."""
        out = []
        if self.phase == HOSTSYNC and now - self.hostsync_start > self.config.hostsync:
            self._log(out, "warning", "HOSTSYNC (%d s) passed without a login count from "
                      "the server; shutting down" % self.config.hostsync)
            out.extend(self._final(now))
        elif self.phase == FINAL and now >= self.final_at:
            self.phase = DONE
            what = []
            if self.config.powerdownflag:
                what.append("writing POWERDOWNFLAG %s" % self.config.powerdownflag)
            what.append("running SHUTDOWNCMD %s" % (self.config.shutdowncmd or "(none set!)"))
            if self.config.gpio_powercut is not None:
                what.append("then asking the power supply to cut power on GPIO %s"
                            % self.config.gpio_powercut.pin)
            self._log(out, "critical", "Executing power-fail shutdown: " + ", ".join(what))
            out.append(Action("shutdown", message=self.reason))
        return out

    def parent_gone(self, now):
        """The privileged process died: say so, every two minutes."""
        out = []
        if self.parent_warned is None or now - self.parent_warned >= 120:
            self.parent_warned = now
            self._log(out, "critical", "the privileged upsmon process is gone: a power "
                      "failure can no longer shut this host down; restart upsmon")
            self._notify(out, "NOPARENT")
        return out

    # -- timing and display ----------------------------------------------
    def alert(self):
        """True while any UPS is in a state that asks for POLLFREQALERT."""
        for u in self.ups:
            if u.comm is False or u.flags & {"OB", "LB", "OFF", "BYPASS", "ALARM", "CAL"}:
                return True
            if "OVER" in u.flags and self.config.overduration >= 0:
                return True
        return False

    def interval(self, now):
        """Seconds until the adapter should call in again."""
        if self.phase == HOSTSYNC:
            return 0.25
        if self.phase == FINAL:
            return max(0.0, min(1.0, self.final_at - now))
        if self.phase == DONE:
            return 1.0
        wait = self.config.pollfreqalert if self.alert() else self.config.pollfreq
        if self.config.oblbduration > 0:
            for u in self.ups:
                if u.oblbsince is not None:
                    left = u.oblbsince + self.config.oblbduration - now
                    wait = min(wait, max(0.25, left))
        return wait

    def indicator(self):
        """What the status LEDs show: None (nothing known yet), "online",
        "onbatt", "lowbatt" (low battery or shutting down) or "commbad"."""
        if self.phase != MONITOR:
            return "lowbatt"
        known = False
        shown = None
        rank = {None: 0, "online": 1, "commbad": 2, "onbatt": 3, "lowbatt": 4}
        for u in self.ups:
            if u.comm is None:
                continue
            known = True
            if u.comm is False:
                state = "commbad"
            elif "LB" in u.flags or "FSD" in u.flags or u.critical:
                state = "lowbatt"
            elif "OB" in u.flags:
                state = "onbatt"
            elif "OL" in u.flags:
                state = "online"
            else:
                state = None
            if rank[state] > rank[shown]:
                shown = state
        return shown if known else None
