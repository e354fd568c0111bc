"""upsd.users: who may do what.

Sections ``[name]`` hold ``password``, ``actions`` (SET, FSD...),
``instcmds`` (names or ALL) and ``upsmon primary|secondary`` (``master`` and
``slave`` are NUT's old names). ``upsmon primary`` grants the actions LOGIN,
MASTER (the PRIMARY command) and FSD; ``secondary`` grants LOGIN. The first
password given wins, as in NUT.

nutapp adds ``allowfrom = <net> ...``: networks a user's commands must come
from (what NUT's TCP-wrappers support did). The core stores the words; the
server decides whether an address is inside.

Passwords may be stored hashed; the core compares through `verify`, a
function the server installs (default: constant-time plaintext compare).
"""

from .errors import ConfigError, ParseError
from .parseconf import parse_text


def constant_time_equal(a, b):
    """Compare two strings without an early exit on the first difference."""
    if isinstance(a, str):
        a = a.encode("utf-8")
    if isinstance(b, str):
        b = b.encode("utf-8")
    diff = len(a) ^ len(b)
    if len(a) != len(b):
        b = a  # keep the time independent of b's length
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


class User:
    __slots__ = ("name", "password", "actions", "instcmds", "allowfrom", "lineno")

    def __init__(self, name, lineno=0):
        self.name = name
        self.password = None
        self.actions = set()  # upper-case
        self.instcmds = set()  # lower-case; "all" means every command
        self.allowfrom = []
        self.lineno = lineno

    def may(self, action):
        return action.upper() in self.actions

    def may_instcmd(self, cmd):
        return "all" in self.instcmds or cmd.lower() in self.instcmds


def _set_upsmon(user, role, warn, where):
    role = role.lower()
    if role in ("primary", "master"):
        user.actions.update(("LOGIN", "MASTER", "PRIMARY", "FSD"))
    elif role in ("secondary", "slave"):
        user.actions.add("LOGIN")
    else:
        warn("%s: unknown upsmon role %r (use primary or secondary)" % (where, role))


class Users:
    def __init__(self):
        self.users = {}  # name (case-sensitive, as NUT) -> User
        self.verify = lambda stored, given: constant_time_equal(stored, given)
        # What an unknown user's password is checked against, so that a
        # wrong name costs as much as a wrong password (a hash when the file
        # holds hashes: the server sets it).
        self.dummy = "x" * 8

    def get(self, name):
        return self.users.get(name)

    def check(self, name, password, action=None, instcmd=None):
        """True if `name`/`password` is valid and holds the permission."""
        if name is None or password is None:
            return False
        user = self.users.get(name)
        if user is None or user.password is None:
            # Spend the same effort as a real check to not reveal user names.
            self.verify(self.dummy, password)
            return False
        if not self.verify(user.password, password):
            return False
        if action is not None and not user.may(action):
            return False
        if instcmd is not None and not user.may_instcmd(instcmd):
            return False
        return True

    @classmethod
    def parse(cls, text, filename="upsd.users", warn=None):
        """Parse upsd.users text. Raises ConfigError naming file:line."""
        if warn is None:
            warn = lambda msg: None
        users = cls()
        try:
            lines = parse_text(text)
        except ParseError as e:
            raise ConfigError(e.message, filename, getattr(e, "lineno", None))
        cur = None
        for lineno, words in lines:
            where = "%s:%d" % (filename, lineno)
            first = words[0]
            if first.startswith("[") and first.endswith("]") and len(words) == 1:
                name = first[1:-1]
                if not name:
                    raise ConfigError("empty user name in section header", filename, lineno)
                if name in users.users:
                    raise ConfigError("user [%s] defined twice" % name, filename, lineno)
                cur = User(name, lineno)
                users.users[name] = cur
                continue
            if first.lower() == "user":  # NUT's long-gone old format
                continue
            if cur is None:
                raise ConfigError("setting %r outside a [user] section" % first, filename, lineno)
            if len(words) >= 3 and words[1] == "=":
                key, values = first.lower(), words[2:]
            elif first.lower() == "upsmon" and len(words) == 2:
                key, values = "upsmon", words[1:]
            else:
                raise ConfigError("expected 'name = value', got %r" % " ".join(words),
                                  filename, lineno)
            if key == "password":
                if cur.password is None:
                    cur.password = values[0]
                else:
                    warn("%s: second password for [%s] ignored (the first wins)"
                         % (where, cur.name))
            elif key == "actions":
                for v in values:
                    cur.actions.add(v.upper())
            elif key == "instcmds":
                for v in values:
                    cur.instcmds.add(v.lower())
            elif key == "upsmon":
                for v in values:
                    _set_upsmon(cur, v, warn, where)
            elif key == "allowfrom":
                cur.allowfrom.extend(values)
            else:
                warn("%s: unknown user setting %r ignored" % (where, key))
        for u in users.users.values():
            if u.password is None:
                warn("%s:%d: user [%s] has no password and cannot log in"
                     % (filename, u.lineno, u.name))
        return users
