"""nutapp.conf: the one settings file for the common case.

An INI file (Python's configparser reads it; Notepad edits it)::

    [system]       hostname, time_servers, allow, ssh
    [ethernet]     mode = dhcp | static | off, address, gateway, dns
    [wifi]         ssid, psk, country
    [ups NAME]     driver (or auto), port, desc, any other driver option
    [user NAME]    password, role = admin | primary | secondary | readonly

`read_settings` checks every value and returns a `Settings` plus the
problems found, each with its line number. Nothing here touches the disk
beyond the text it is given.
"""

import configparser
import ipaddress
import re

from nutapp.passwords import is_hashed, parse_hash
from nutapp.timesync import format_server, parse_server

FILENAME = "nutapp.conf"

ROLES = ("admin", "primary", "secondary", "readonly")
ROLE_ALIASES = {
    "upsmon primary": "primary", "upsmon secondary": "secondary",
    "master": "primary", "slave": "secondary", "read-only": "readonly",
    "monitor": "readonly",
}

# Values shipped in the examples that must be replaced before use.
EXAMPLE_PASSWORDS = ("CHANGE-ME", "change-me", "changeme")

MIN_PASSWORD = 8

# Roles whose login grants nothing but being counted as a watching upsmon
# (secondary) or nothing at all (readonly). NAS boxes send a fixed password
# of their own for such a login (Synology: monuser / secret), so these
# roles take a shorter one: guessing it would only let a stranger look like
# one more secondary, which the allowed networks already bound.
LOGIN_ONLY_ROLES = ("secondary", "readonly")

KNOWN = {
    "system": ("hostname", "time_servers", "allow", "ssh"),
    "ethernet": ("mode", "address", "gateway", "dns"),
    "wifi": ("ssid", "psk", "country"),
    "user": ("password", "role"),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_OPTION = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class Settings:
    """What nutapp.conf asks for, checked. Absent sections stay None/empty."""

    def __init__(self):
        self.hostname = None
        self.time_servers = []
        self.allow = None  # ipaddress networks; [] (allow = local): the local subnet
        self.ssh = None  # True, False, or None for "when keys are given"
        self.ethernet = None  # dict: mode, address (ip_interface), gateway, dns
        self.wifi = None  # dict: ssid, psk (None: keep the installed one), country;
        # {} when switched off
        self.upses = []  # (name, [(key, value)], lineno)
        self.users = []  # dicts: name, password, role, lineno, password_line
        self.lines = {}  # (section, key) -> line number, for rewriting
        self.text = ""


def read_settings(text, problems, filename=FILENAME):
    """Parse and check nutapp.conf `text`; add problems; return Settings."""
    s = Settings()
    s.text = text
    s.lines = _line_index(text)
    parser = configparser.ConfigParser(
        interpolation=None, strict=True, empty_lines_in_values=False,
        inline_comment_prefixes=("#", ";"), default_section="\x00defaults",
    )
    try:
        parser.read_string(text, source=filename)
    except configparser.DuplicateSectionError as e:
        what = "the section [%s] appears twice" % e.section
        fix = "keep one [%s] section and delete the other" % e.section
        if e.section.startswith("user "):
            what = "the user %s is defined twice" % e.section[5:].strip()
            fix = "give each user one [user NAME] section"
        problems.add(filename, e.lineno, what, fix)
        return s
    except configparser.DuplicateOptionError as e:
        problems.add(filename, e.lineno, "%s is set twice in [%s]" % (e.option, e.section),
                     "keep one %s line in that section" % e.option)
        return s
    except configparser.MissingSectionHeaderError as e:
        problems.add(filename, e.lineno, "a setting comes before any [section] header",
                     "put it under [system], [ethernet], [wifi], [ups NAME] or [user NAME]")
        return s
    except configparser.ParsingError as e:
        for lineno, line in e.errors:
            problems.add(filename, lineno, "this line is not `name = value`: %s" % line.strip(),
                         "write settings as name = value, comments start with #")
        return s

    seen_users = {}
    for section in parser.sections():
        kind, _, name = section.partition(" ")
        name = name.strip()
        where = s.lines.get((section, None))
        values = dict((k, _unquote(v)) for k, v in parser.items(section))
        if kind in ("system", "ethernet", "wifi") and not name:
            _check_known(s, section, kind, values, problems, filename)
            getattr(_Checks, kind)(s, section, values, problems, filename)
        elif kind == "ups" and name:
            _check_ups(s, section, name, values, problems, filename, where)
        elif kind == "user" and name:
            _check_known(s, section, "user", values, problems, filename)
            if name.lower() in seen_users:
                problems.add(filename, where, "the user %s is defined twice (also line %s)"
                             % (name, seen_users[name.lower()]),
                             "give each user one [user NAME] section")
                continue
            seen_users[name.lower()] = where
            _check_user(s, section, name, values, problems, filename, where)
        else:
            problems.add(filename, where, "unknown section [%s]" % section,
                         "use [system], [ethernet], [wifi], [ups NAME] or [user NAME]")
    return s


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _line_index(text):
    """Map (section, key) and (section, None) to their first line number."""
    index = {}
    section = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and "]" in stripped:
            section = stripped[1:stripped.index("]")].strip()
            index.setdefault((section, None), lineno)
            continue
        if line[:1].isspace():
            continue  # continuation of a value
        key = re.split(r"[=:]", stripped, 1)[0].strip().lower()
        index.setdefault((section, key), lineno)
    return index


def _check_known(s, section, kind, values, problems, filename):
    for key in values:
        if key not in KNOWN[kind]:
            problems.add(filename, s.lines.get((section, key)),
                         "[%s] has no setting called %s" % (section, key),
                         "the settings there are: %s" % ", ".join(KNOWN[kind]))


def _split_list(value):
    return [v for v in re.split(r"[,\s]+", value) if v]


def valid_hostname(name, dots=False):
    labels = name.split(".") if dots else [name]
    return 0 < len(name) <= 253 and all(_LABEL.match(x.lower()) for x in labels)


class _Checks:
    @staticmethod
    def system(s, section, values, problems, filename):
        line = lambda key: s.lines.get((section, key))  # noqa: E731
        if "hostname" in values:
            name = values["hostname"]
            if valid_hostname(name):
                s.hostname = name.lower()
            else:
                problems.add(filename, line("hostname"), "%r is not a usable host name" % name,
                             "use 1 to 63 letters, digits and dashes, no dots "
                             "(the appliance is then reachable as NAME.local)")
        for server in _split_list(values.get("time_servers", "")):
            parsed = parse_server(server)
            if parsed and (_is_ip(parsed[0]) or valid_hostname(parsed[0], dots=True)):
                s.time_servers.append(format_server(parsed[0].lower(), parsed[1]))
            else:
                problems.add(filename, line("time_servers"),
                             "%r is not a host name or an IP address" % server,
                             "list time servers separated by commas, e.g. pool.ntp.org "
                             "(a port may follow a colon: 192.168.1.1:123, [fd00::1]:123)")
        if "allow" in values:
            s.allow = []
            for item in _split_list(values["allow"]):
                if item.lower() == "local":
                    continue
                net = parse_network(item, problems, filename, line("allow"))
                if net is not None:
                    s.allow.append(net)
        if "ssh" in values:
            s.ssh = _yes_no(values["ssh"], problems, filename, line("ssh"))

    @staticmethod
    def ethernet(s, section, values, problems, filename):
        line = lambda key: s.lines.get((section, key))  # noqa: E731
        mode = values.get("mode", "dhcp").lower()
        eth = {"mode": mode, "address": None, "gateway": None, "dns": []}
        if mode not in ("dhcp", "static", "off"):
            problems.add(filename, line("mode"), "ethernet mode %r is not dhcp, static or off"
                         % mode, "write mode = dhcp (most networks) or mode = static")
        if mode == "static":
            eth["address"] = _interface(values.get("address", ""), problems, filename,
                                        line("address") or s.lines.get((section, None)))
            if values.get("gateway"):
                gw = _ip(values["gateway"], problems, filename, line("gateway"))
                iface = eth["address"]
                if gw is not None and iface is not None and gw not in iface.network:
                    problems.add(filename, line("gateway"),
                                 "the gateway %s is not in the network %s of the address"
                                 % (gw, iface.network),
                                 "use your router's address, inside %s" % iface.network)
                eth["gateway"] = gw
            for d in _split_list(values.get("dns", "")):
                addr = _ip(d, problems, filename, line("dns"))
                if addr is not None:
                    eth["dns"].append(addr)
        elif mode == "dhcp":
            for key in ("address", "gateway", "dns"):
                if values.get(key):
                    problems.add(filename, line(key),
                                 "%s is set but the ethernet mode is dhcp" % key,
                                 "write mode = static to use a fixed address, "
                                 "or delete the %s line" % key)
        s.ethernet = eth

    @staticmethod
    def wifi(s, section, values, problems, filename):
        line = lambda key: s.lines.get((section, key))  # noqa: E731
        ssid = values.get("ssid", "")
        if not ssid:
            s.wifi = {}  # ssid left empty: Wi-Fi off
            return
        wifi = {"ssid": ssid, "psk": None, "country": values.get("country", "").upper()}
        if not 1 <= len(ssid.encode("utf-8")) <= 32:
            problems.add(filename, line("ssid"), "a Wi-Fi name (ssid) has 1 to 32 characters",
                         "copy the network name exactly as your phone shows it")
        psk = values.get("psk")
        if psk is not None:
            hexkey = len(psk) == 64 and all(c in "0123456789abcdefABCDEF" for c in psk)
            if not hexkey and not (8 <= len(psk) <= 63 and _printable_ascii(psk)):
                problems.add(filename, line("psk"),
                             "a Wi-Fi password (psk) has 8 to 63 plain characters",
                             "copy the Wi-Fi password exactly; letters, digits and "
                             "punctuation only")
            else:
                wifi["psk"] = psk
        if not re.match(r"^[A-Z]{2}$", wifi["country"]):
            problems.add(filename, line("country") or s.lines.get((section, None)),
                         "Wi-Fi needs the country (two letters) for its radio rules",
                         "add a line such as country = GB")
        s.wifi = wifi


def _check_ups(s, section, name, values, problems, filename, where):
    if not _NAME.match(name):
        problems.add(filename, where, "%r is not a usable UPS name" % name,
                     "use letters, digits, dots, dashes and underscores, e.g. [ups myups]")
        return
    options = []
    for key, value in values.items():
        if not _OPTION.match(key):
            problems.add(filename, s.lines.get((section, key)) or where,
                         "%r is not a driver option name" % key,
                         "option names are one word, e.g. pollinterval or vendorid")
            continue
        if key == "driver" and value.lower() == "auto":
            value = "auto"
        options.append((key, value))
    s.upses.append((name, options, where))


def _check_user(s, section, name, values, problems, filename, where):
    line = lambda key: s.lines.get((section, key)) or where  # noqa: E731
    if not _NAME.match(name):
        problems.add(filename, where, "%r is not a usable user name" % name,
                     "use letters, digits, dots, dashes and underscores")
        return
    role = values.get("role", "").lower()
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        problems.add(filename, line("role"),
                     "user %s needs a role: %s" % (name, ", ".join(ROLES)),
                     "admin may change settings and run commands; primary and "
                     "secondary are for upsmon; readonly only reads")
    password = values.get("password", "")
    check_password(password, "user %s" % name, problems, filename, line("password"),
                   login_only=role in LOGIN_ONLY_ROLES)
    s.users.append({"name": name, "password": password, "role": role, "lineno": where,
                    "password_line": s.lines.get((section, "password"))})


def check_password(password, who, problems, filename, lineno, login_only=False):
    """Add a problem when `password` (plain or hashed) cannot be used.

    `login_only`: the user may do no more than LOGIN, so a password shorter
    than MIN_PASSWORD (a NAS box's fixed one) is accepted."""
    if is_hashed(password):
        if parse_hash(password) is None:
            problems.add(filename, lineno, "the password hash of %s is damaged" % who,
                         "write a new password here; it is replaced by its hash on import")
        return
    if not password:
        problems.add(filename, lineno, "%s has no password" % who,
                     "add a line password = ... (at least %d characters, no spaces)"
                     % MIN_PASSWORD)
    elif password in EXAMPLE_PASSWORDS:
        problems.add(filename, lineno, "%s still has the example password" % who,
                     "choose your own password (at least %d characters, no spaces)"
                     % MIN_PASSWORD)
    elif any(c.isspace() for c in password) or not _printable_ascii(password):
        problems.add(filename, lineno, "the password of %s has spaces or special characters"
                     % who, "NUT clients send passwords unquoted: use letters, digits "
                     "and punctuation, no spaces")
    elif len(password) < MIN_PASSWORD and not login_only:
        problems.add(filename, lineno, "the password of %s is shorter than %d characters"
                     % (who, MIN_PASSWORD), "choose a longer password (only a secondary "
                     "or readonly user, e.g. a NAS box's, may have a shorter one)")


def parse_network(text, problems, filename, lineno):
    """An allowed network ("192.168.1.0/24", "fd00::/64", a single address)."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        near = ipaddress.ip_network(text, strict=False)
        problems.add(filename, lineno, "%s is not a network: the address has host bits set"
                     % text, "write the network's first address, %s" % near)
    except ValueError:
        problems.add(filename, lineno, "%r is not a network or an IP address" % text,
                     "write networks like 192.168.1.0/24 or fd00::/64, separated by commas")
    return None


def _interface(text, problems, filename, lineno):
    if "/" not in text:
        problems.add(filename, lineno, "a static address needs its prefix length, "
                     "e.g. 192.168.1.20/24 (got %r)" % text,
                     "write address = <address>/<prefix length>")
        return None
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        problems.add(filename, lineno, "%r is not an address with a prefix length" % text,
                     "write e.g. address = 192.168.1.20/24")
        return None
    net = iface.network
    if net.num_addresses > 2 and iface.ip in (net.network_address, net.broadcast_address):
        problems.add(filename, lineno, "%s is the network's own or broadcast address" % iface,
                     "pick a free address inside %s" % net)
        return None
    return iface


def _ip(text, problems, filename, lineno):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        problems.add(filename, lineno, "%r is not an IP address" % text,
                     "write an address like 192.168.1.1")
        return None


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _yes_no(value, problems, filename, lineno):
    v = value.lower()
    if v in ("yes", "true", "on", "1"):
        return True
    if v in ("no", "false", "off", "0"):
        return False
    if v == "auto":
        return None
    problems.add(filename, lineno, "%r is not yes, no or auto" % value, "write yes or no")
    return None


def _printable_ascii(text):
    return all(0x20 <= ord(c) < 0x7F for c in text)
