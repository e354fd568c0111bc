"""NUT's server-side config files: upsd.conf and ups.conf.

Both use NUT's grammar (`parseconf`). Errors raise ConfigError naming
file:line and the problem; unknown directives are passed to `warn`, as NUT
warns and goes on.
"""

from .errors import ConfigError, ParseError
from .parseconf import parse_text

DEFAULT_PORT = 3493


def _lines(text, filename):
    try:
        return parse_text(text)
    except ParseError as e:
        raise ConfigError(e.message, filename, getattr(e, "lineno", None))


def _int_arg(words, filename, lineno, lo=None, hi=None):
    if len(words) != 2:
        raise ConfigError("%s takes one number" % words[0], filename, lineno)
    try:
        n = int(words[1])
    except ValueError:
        raise ConfigError("%s: %r is not a number" % (words[0], words[1]), filename, lineno)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ConfigError("%s: %d is out of range" % (words[0], n), filename, lineno)
    return n


def _bool_arg(words, filename, lineno):
    if len(words) == 1:
        return True
    v = words[1].lower()
    if v in ("1", "yes", "true", "on"):
        return True
    if v in ("0", "no", "false", "off"):
        return False
    raise ConfigError("%s: expected yes/no or 1/0, got %r" % (words[0], words[1]),
                      filename, lineno)


_CERTREQUEST = {"0": 0, "no": 0, "1": 1, "request": 1, "2": 2, "require": 2}


class UpsdConf:
    """upsd.conf settings with NUT's defaults."""

    def __init__(self):
        self.maxage = 15
        self.trackingdelay = 3600
        self.allow_no_device = False
        self.allow_not_all_listeners = False
        self.statepath = None
        self.listen = []  # (host, port); empty means NUT's default
        self.maxconn = 1024
        self.certfile = None
        self.certpath = None
        self.certident = None  # (name, password)
        self.certrequest = 0  # 0 NO, 1 REQUEST, 2 REQUIRE
        self.disable_weak_ssl = True  # nutapp's default: TLS 1.2 floor
        self.require_tls = False  # refuse credentials before STARTTLS
        self.maxconn_per_source = 32
        self.idle_timeout = 60
        self.debug_min = 0

    def listeners(self):
        """LISTEN entries, NUT's default (loopback v4 and v6) when none."""
        if self.listen:
            return self.listen
        return [("127.0.0.1", DEFAULT_PORT), ("::1", DEFAULT_PORT)]

    @classmethod
    def parse(cls, text, filename="upsd.conf", warn=None):
        warn = warn or (lambda msg: None)
        conf = cls()
        for lineno, words in _lines(text, filename):
            key = words[0].upper()
            if key == "MAXAGE":
                conf.maxage = _int_arg(words, filename, lineno, 1)
            elif key == "TRACKINGDELAY":
                conf.trackingdelay = _int_arg(words, filename, lineno, 0)
            elif key == "ALLOW_NO_DEVICE":
                conf.allow_no_device = _bool_arg(words, filename, lineno)
            elif key == "ALLOW_NOT_ALL_LISTENERS":
                conf.allow_not_all_listeners = _bool_arg(words, filename, lineno)
            elif key == "STATEPATH":
                if len(words) != 2:
                    raise ConfigError("STATEPATH takes one directory", filename, lineno)
                conf.statepath = words[1]
            elif key == "LISTEN":
                if len(words) not in (2, 3):
                    raise ConfigError("LISTEN takes an address and an optional port",
                                      filename, lineno)
                port = DEFAULT_PORT
                if len(words) == 3:
                    port = _int_arg(words[1:], filename, lineno, 1, 65535)
                conf.listen.append((words[1], port))
            elif key == "MAXCONN":
                conf.maxconn = _int_arg(words, filename, lineno, 1)
            elif key == "MAXCONN_PER_SOURCE":
                conf.maxconn_per_source = _int_arg(words, filename, lineno, 1)
            elif key == "IDLE_TIMEOUT":
                conf.idle_timeout = _int_arg(words, filename, lineno, 1)
            elif key == "CERTFILE":
                if len(words) != 2:
                    raise ConfigError("CERTFILE takes one file name", filename, lineno)
                conf.certfile = words[1]
            elif key == "CERTPATH":
                if len(words) != 2:
                    raise ConfigError("CERTPATH takes one path", filename, lineno)
                conf.certpath = words[1]
            elif key == "CERTIDENT":
                if len(words) not in (2, 3):
                    raise ConfigError("CERTIDENT takes a name and a password",
                                      filename, lineno)
                conf.certident = (words[1], words[2] if len(words) == 3 else "")
            elif key == "CERTREQUEST":
                if len(words) != 2 or words[1].lower() not in _CERTREQUEST:
                    raise ConfigError("CERTREQUEST takes NO, REQUEST or REQUIRE",
                                      filename, lineno)
                conf.certrequest = _CERTREQUEST[words[1].lower()]
            elif key == "DISABLE_WEAK_SSL":
                conf.disable_weak_ssl = _bool_arg(words, filename, lineno)
            elif key in ("REQUIRE_TLS", "FORCESSL"):
                conf.require_tls = _bool_arg(words, filename, lineno)
            elif key == "DEBUG_MIN":
                conf.debug_min = _int_arg(words, filename, lineno, 0)
            else:
                warn("%s:%d: unknown directive %s ignored" % (filename, lineno, words[0]))
        return conf


# ups.conf global keys NUT knows (others are warned about).
_UPSCONF_GLOBALS = ("chroot", "driverpath", "maxstartdelay", "maxretry", "retrydelay",
                    "pollinterval", "user", "group", "synchronous", "statepath",
                    "nowait", "debug_min", "lockfile")


class UpsSection:
    """One ``[name]`` of ups.conf: lower-case keys to values."""

    def __init__(self, name, lineno):
        self.name = name
        self.lineno = lineno
        self.options = {}
        self.flags = set()  # bare words such as "nolock"

    @property
    def driver(self):
        return self.options.get("driver")

    @property
    def port(self):
        return self.options.get("port")

    @property
    def desc(self):
        return self.options.get("desc")


class UpsConf:
    def __init__(self):
        self.globals = {}
        self.ups = {}  # name -> UpsSection, in file order

    def get(self, name):
        """Section by name, case-insensitive as NUT's lookups are."""
        s = self.ups.get(name)
        if s is None:
            for k, v in self.ups.items():
                if k.lower() == name.lower():
                    return v
        return s

    @classmethod
    def parse(cls, text, filename="ups.conf", warn=None, known_drivers=None):
        warn = warn or (lambda msg: None)
        conf = cls()
        cur = None
        for lineno, words in _lines(text, filename):
            first = words[0]
            if first.startswith("[") and first.endswith("]") and len(words) == 1:
                name = first[1:-1]
                if not name or " " in name:
                    raise ConfigError("bad UPS name %r" % name, filename, lineno)
                if conf.get(name) is not None:
                    raise ConfigError("UPS [%s] defined twice" % name, filename, lineno)
                cur = UpsSection(name, lineno)
                conf.ups[name] = cur
                continue
            if len(words) >= 3 and words[1] == "=":
                key, value = first.lower(), " ".join(words[2:])
            elif len(words) == 2 and words[1] == "=":
                key, value = first.lower(), ""
            elif len(words) == 1:
                key, value = first.lower(), None
            else:
                raise ConfigError("expected 'name = value', got %r" % " ".join(words),
                                  filename, lineno)
            if cur is None:
                if value is None:
                    conf.globals[key] = "1"
                else:
                    if key not in _UPSCONF_GLOBALS:
                        warn("%s:%d: unknown global setting %r" % (filename, lineno, key))
                    conf.globals[key] = value
            elif value is None:
                cur.flags.add(key)
            else:
                cur.options[key] = value
        for s in conf.ups.values():
            if not s.driver:
                raise ConfigError("UPS [%s] has no 'driver ='" % s.name, filename, s.lineno)
            if known_drivers is not None and s.driver not in known_drivers:
                raise ConfigError("UPS [%s]: unknown driver %r (known: %s)"
                                  % (s.name, s.driver, ", ".join(sorted(known_drivers))),
                                  filename, s.lineno)
            if s.port is None:
                raise ConfigError("UPS [%s] has no 'port =' (NUT requires one)" % s.name,
                                  filename, s.lineno)
        return conf
