"""NUT's own files from the boot folder: checked, and made from nutapp.conf.

A person may drop NUT's ups.conf, upsd.conf, upsd.users and upsmon.conf
into the boot folder instead of (or next to) nutapp.conf. They are read
with NUT's grammar (nutapp.core.parseconf) and checked line by line: known
directives, argument counts, drivers nutapp has, one section per UPS and
per user, usable passwords.

The ``render_*`` functions write the same files from a `Settings`.
"""

import ipaddress
import re

from nutapp.core.errors import ParseError
from nutapp.core.parseconf import parse_text, quote
from nutapp.drivers import DRIVERS
from nutapp.passwords import is_hashed

from .settings import check_password, parse_network

NUT_FILES = ("ups.conf", "upsd.conf", "upsd.users", "upsmon.conf")

# driver = auto: the USB HID driver with port = auto finds the one UPS on
# USB, which is what nearly every consumer UPS speaks.
AUTO_DRIVER = "usbhid-ups"

UPS_GLOBALS = (
    "chroot", "driverpath", "maxstartdelay", "maxretry", "retrydelay", "pollinterval",
    "user", "group", "statepath", "synchronous", "debug_min", "nowait",
)

# upsd.conf directive -> (min args, max args)
UPSD_DIRECTIVES = {
    "MAXAGE": (1, 1), "TRACKINGDELAY": (1, 1), "ALLOW_NO_DEVICE": (1, 1),
    "ALLOW_NOT_ALL_LISTENERS": (1, 1), "STATEPATH": (1, 1), "LISTEN": (1, 2),
    "MAXCONN": (1, 1), "CERTFILE": (1, 1), "CERTPATH": (1, 1), "CERTIDENT": (2, 2),
    "CERTREQUEST": (1, 1), "DISABLE_WEAK_SSL": (1, 1), "DEBUG_MIN": (1, 1),
}
# Set by provisioning itself, to the certificate it installs.
UPSD_MANAGED = ("CERTFILE", "CERTPATH", "CERTREQUEST")

UPSMON_DIRECTIVES = {
    "MONITOR": (5, 5), "MINSUPPLIES": (1, 1), "POLLFREQ": (1, 1), "POLLFREQALERT": (1, 1),
    "DEADTIME": (1, 1), "HOSTSYNC": (1, 1), "FINALDELAY": (1, 1), "RBWARNTIME": (1, 1),
    "NOCOMMWARNTIME": (1, 1), "OFFDURATION": (1, 1), "OVERDURATION": (1, 1),
    "OBLBDURATION": (1, 1), "SHUTDOWNCMD": (1, 1), "NOTIFYCMD": (1, 1),
    "NOTIFYMSG": (2, 2), "NOTIFYFLAG": (2, 2), "POWERDOWNFLAG": (1, 1),
    "RUN_AS_USER": (1, 1), "CERTPATH": (1, 1), "CERTFILE": (1, 1), "CERTIDENT": (2, 2),
    "CERTHOST": (4, 4), "CERTVERIFY": (1, 1), "FORCESSL": (1, 1), "DEBUG_MIN": (1, 1),
}

UPSMON_NUMBERS = (
    "MINSUPPLIES", "POLLFREQ", "POLLFREQALERT", "DEADTIME", "HOSTSYNC", "FINALDELAY",
    "RBWARNTIME", "NOCOMMWARNTIME", "OFFDURATION", "OVERDURATION", "OBLBDURATION",
    "CERTVERIFY", "FORCESSL", "DEBUG_MIN",
)

USER_ACTIONS = ("SET", "FSD")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_nut_file(text, problems, filename):
    """NUT grammar: ``[(lineno, words)]``, or None after adding a problem."""
    try:
        return parse_text(text)
    except ParseError as e:
        problems.add(filename, getattr(e, "lineno", None), "%s" % e,
                     'check the quotes: a value with spaces goes in "double quotes", '
                     'and # inside quotes needs a backslash before it')
        return None


def _sections(lines, problems, filename, what, free_form=False):
    """Split parsed lines into (globals, [(name, lineno, [(lineno, key, value)])])."""
    head, sections, seen = [], [], {}
    current = head
    for lineno, words in lines:
        w0 = words[0]
        if w0.startswith("[") and w0.endswith("]") and len(words) == 1:
            name = w0[1:-1].strip()
            if not _NAME.match(name):
                problems.add(filename, lineno, "[%s] is not a usable %s name" % (name, what),
                             "use letters, digits, dots, dashes and underscores")
            if name.lower() in seen:
                problems.add(filename, lineno, "the %s [%s] is defined twice (also line %d)"
                             % (what, name, seen[name.lower()]),
                             "keep one [%s] section" % name)
            seen.setdefault(name.lower(), lineno)
            current = []
            sections.append((name, lineno, current))
            continue
        if len(words) >= 2 and words[1] == "=":
            values = words[2:]
        elif free_form:
            values = words[1:]  # upsd.users also takes `upsmon primary`
        elif len(words) == 1:
            values = []  # a flag
        else:
            values = None
        if values is None or (not free_form and len(values) > 1):
            problems.add(filename, lineno, "this line is not `name = value`: %s"
                         % " ".join(words),
                         'put values with spaces in "double quotes"')
            continue
        current.append((lineno, words[0], " ".join(values) if values else None))
    return head, sections


def check_ups_conf(text, problems, filename="ups.conf"):
    """Check ups.conf; return the UPS names it defines."""
    lines = parse_nut_file(text, problems, filename)
    if lines is None:
        return []
    head, sections = _sections(lines, problems, filename, "UPS")
    for lineno, key, _ in head:
        if key.lower() not in UPS_GLOBALS:
            problems.add(filename, lineno, "%s is not a global ups.conf setting" % key,
                         "driver options go below a [upsname] line")
    if not sections:
        problems.add(filename, None, "no UPS is defined",
                     "add a section such as [myups] with driver = and port = lines")
    for name, lineno, items in sections:
        keys = dict((k.lower(), (ln, v)) for ln, k, v in items)
        if "driver" not in keys:
            problems.add(filename, lineno, "[%s] has no driver = line" % name,
                         "add e.g. driver = usbhid-ups")
        else:
            ln, driver = keys["driver"]
            check_driver(driver, problems, filename, ln)
        if "port" not in keys:
            problems.add(filename, lineno, "[%s] has no port = line" % name,
                         "add port = auto for USB, or the serial device, e.g. /dev/ttyUSB0")
    return [name for name, _, _ in sections]


def check_driver(driver, problems, filename, lineno):
    if driver not in DRIVERS:
        problems.add(filename, lineno, "nutapp has no driver called %r" % driver,
                     "use one of: %s (or auto in nutapp.conf)" % ", ".join(sorted(DRIVERS)))


def check_upsd_conf(text, problems, filename="upsd.conf"):
    lines = parse_nut_file(text, problems, filename)
    if lines is None:
        return
    for lineno, words in lines:
        name = words[0].upper()
        if name not in UPSD_DIRECTIVES:
            problems.add(filename, lineno, "upsd.conf has no directive %s" % words[0],
                         "known directives: %s" % ", ".join(sorted(UPSD_DIRECTIVES)))
            continue
        if name in UPSD_MANAGED:
            problems.add(filename, lineno, "%s is set by provisioning" % name,
                         "delete this line; put the certificate (upsd.crt, upsd.key) "
                         "and client CA (client-ca.pem) next to this file instead")
            continue
        _check_args(words, UPSD_DIRECTIVES[name], problems, filename, lineno)
        if name == "LISTEN" and len(words) >= 2:
            if words[1] != "*":
                try:
                    ipaddress.ip_address(words[1])
                except ValueError:
                    problems.add(filename, lineno, "LISTEN %s: not an IP address" % words[1],
                                 "write LISTEN * to listen on every address, or an address")
            if len(words) == 3:
                _check_int(words[2], problems, filename, lineno, 1, 65535, "port")
        elif name in ("MAXAGE", "TRACKINGDELAY", "MAXCONN", "DEBUG_MIN"):
            _check_int(words[1], problems, filename, lineno, 0, 10 ** 6, name)


def check_upsmon_conf(text, problems, filename="upsmon.conf"):
    lines = parse_nut_file(text, problems, filename)
    if lines is None:
        return
    for lineno, words in lines:
        name = words[0].upper()
        if name not in UPSMON_DIRECTIVES:
            problems.add(filename, lineno, "upsmon.conf has no directive %s" % words[0],
                         "check the spelling against upsmon.conf(5)")
            continue
        if not _check_args(words, UPSMON_DIRECTIVES[name], problems, filename, lineno):
            continue
        if name in UPSMON_NUMBERS:
            _check_int(words[1], problems, filename, lineno, -1, 10 ** 6, name)
        elif name == "MONITOR":
            _check_int(words[2], problems, filename, lineno, 0, 1000, "power value")
            if words[5].lower() not in ("primary", "secondary", "master", "slave"):
                problems.add(filename, lineno, "MONITOR must end with primary or secondary",
                             "write e.g. MONITOR myups@localhost 1 monuser PASSWORD primary")


def check_upsd_users(text, problems, filename="upsd.users"):
    """Check upsd.users; return ``[(name, lineno, password, password_line)]``."""
    lines = parse_nut_file(text, problems, filename)
    if lines is None:
        return []
    head, sections = _sections(lines, problems, filename, "user", free_form=True)
    for lineno, key, _ in head:
        problems.add(filename, lineno, "%s comes before any [username] line" % key,
                     "start each user with a [username] line")
    users = []
    for name, lineno, items in sections:
        password, password_line = None, lineno
        login_only = True  # until an action, instcmd or upsmon primary says more
        for ln, key, value in items:
            k = key.lower()
            if k == "password":
                if password is not None:
                    problems.add(filename, ln, "user %s has two password lines" % name,
                                 "keep one")
                    continue
                password, password_line = value or "", ln
            elif k == "actions":
                login_only = login_only and not (value or "").split()
                for action in (value or "").split():
                    if action.upper() not in USER_ACTIONS:
                        problems.add(filename, ln, "unknown action %s" % action,
                                     "actions are SET and FSD")
            elif k == "instcmds":
                login_only = login_only and not (value or "").split()
            elif k == "upsmon":
                login_only = login_only and (value or "").lower() in ("secondary", "slave")
                if (value or "").lower() not in ("primary", "secondary", "master", "slave"):
                    problems.add(filename, ln, "upsmon must be primary or secondary",
                                 "write upsmon primary (or upsmon = primary)")
            elif k == "allowfrom":  # nutapp's: where the user's logins may come from
                nets = (value or "").split()
                if not nets or "," in (value or ""):
                    problems.add(filename, ln, "allowfrom of user %s: %r" % (name, value or ""),
                                 "name networks separated by spaces, e.g. "
                                 "allowfrom = 192.168.1.0/24 fd00::/64")
                    continue
                for net in nets:
                    parse_network(net, problems, filename, ln)
            else:
                problems.add(filename, ln, "upsd.users has no setting %s" % key,
                             "the settings are password, actions, instcmds, upsmon, "
                             "allowfrom")
        check_password(password or "", "user %s" % name, problems, filename, password_line,
                       login_only=login_only)
        users.append((name, lineno, password or "", password_line))
    return users


def _check_args(words, limits, problems, filename, lineno):
    low, high = limits
    n = len(words) - 1
    if low <= n <= high:
        return True
    want = str(low) if low == high else "%d to %d" % (low, high)
    problems.add(filename, lineno, "%s takes %s value(s), this line has %d"
                 % (words[0], want, n), 'put a value with spaces in "double quotes"')
    return False


def _check_int(text, problems, filename, lineno, low, high, what):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        problems.add(filename, lineno, "%s %r is not a number from %d to %d"
                     % (what, text, low, high), "write a whole number")


# --- rendering ------------------------------------------------------------

HEADER = "# Written by nutapp provision from %s on the boot partition.\n" \
         "# Edit that file instead: this one is replaced on the next import.\n"


def _value(value):
    """A ups.conf/upsd.users value, quoted when the grammar needs it."""
    if value and re.match(r"^[A-Za-z0-9_./:@+,-]+$", value):
        return value
    return '"%s"' % quote(value)


def render_ups_conf(settings, statepath):
    out = [HEADER % "nutapp.conf", "statepath = %s\n" % _value(statepath)]
    for name, options, _ in settings.upses:
        out.append("\n[%s]\n" % name)
        opts = dict(options)
        driver = opts.get("driver", "auto")
        if driver == "auto":
            out.append("\tdriver = %s\n" % AUTO_DRIVER)
            out.append("\tport = %s\n" % _value(opts.get("port", "auto")))
        else:
            out.append("\tdriver = %s\n" % _value(driver))
            out.append("\tport = %s\n" % _value(opts.get("port", "auto")))
        for key, value in options:
            if key in ("driver", "port"):
                continue
            out.append("\t%s = %s\n" % (key, _value(value)))
    return "".join(out)


def check_settings_upses(settings, problems, filename):
    for name, options, lineno in settings.upses:
        opts = dict(options)
        driver = opts.get("driver")
        if driver is None:
            problems.add(filename, lineno, "[ups %s] has no driver line" % name,
                         "add driver = auto for a USB UPS, or the NUT driver's name")
        elif driver != "auto":
            line = settings.lines.get(("ups " + name, "driver"), lineno)
            check_driver(driver, problems, filename, line)
            if "port" not in opts and driver != "usbhid-ups":
                problems.add(filename, lineno, "[ups %s] needs a port line for %s"
                             % (name, driver), "add e.g. port = /dev/ttyUSB0")


def render_upsd_conf(base_text, certfile, client_ca):
    """upsd.conf: the person's own lines (or defaults) plus the TLS lines."""
    if base_text is None:
        out = [HEADER % "nutapp.conf", "LISTEN * 3493\n"]
    else:
        out = [base_text if base_text.endswith("\n") or not base_text else base_text + "\n",
               "\n# Added by nutapp provision:\n"]
    out.append("CERTFILE %s\n" % _value(certfile))
    if base_text is None:
        out.append("DISABLE_WEAK_SSL 1\n")
    if client_ca:
        out.append("CERTPATH %s\n" % _value(client_ca))
        out.append("CERTREQUEST 2\n")
    return "".join(out)


ROLE_LINES = {
    "admin": ("actions = SET FSD", "instcmds = ALL"),
    "primary": ("upsmon primary",),
    "secondary": ("upsmon secondary",),
    "readonly": (),
}


def render_upsd_users(users):
    """upsd.users from ``[(name, hashed password, role)]``."""
    out = [HEADER % "nutapp.conf"]
    for name, password, role in users:
        out.append("\n[%s]\n\tpassword = \"%s\"\n" % (name, quote(password)))
        for line in ROLE_LINES.get(role, ()):
            out.append("\t%s\n" % line)
    return "".join(out)


def hash_users_text(text, hashes):
    """upsd.users `text` with each plain password line replaced by its hash.

    `hashes` maps a line number to the hashed value. Returns None when a
    password line does not have the plain ``password = value`` shape (the
    caller then removes the file from the boot folder instead).
    """
    lines = text.split("\n")
    for lineno, hashed in hashes.items():
        line = lines[lineno - 1]
        m = re.match(r"^(\s*password\s*=?\s*)(\S.*?)(\s*(#.*)?)$", line, re.I)
        if not m:
            return None
        lines[lineno - 1] = '%s"%s"%s' % (m.group(1), hashed, m.group(3) or "")
    return "\n".join(lines)


def plain_passwords(users):
    """The users whose stored password is plain text."""
    return [u for u in users if u[2] and not is_hashed(u[2])]

