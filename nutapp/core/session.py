"""One client connection's conversation with upsd (protocol 1.3, RFC 9271).

`Session.handle_line` takes one request line and returns the complete reply
text, so the adapter can send it in a single write. Replies, error words and
the order of checks follow NUT's upsd. The session never does I/O: STARTTLS
and LOGOUT are flagged in `start_tls` / `closing` for the adapter to act on
after writing the reply.

`GET VAR` is what monitoring clients send over and over on one connection,
so each session remembers its last few `GET VAR` replies by request line and
answers a repeat from there while everything the reply depends on (the UPS
table entry, the driver link, staleness, the FSD latch, the state version)
is unchanged.
"""

from .errors import ParseError
from .parseconf import quote, split_line

HELP_TEXT = ("Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT "
             "USERNAME PASSWORD STARTTLS\n")
NETVER = "1.3"
MAX_REMEMBERED = 32  # GET VAR replies kept per session


def err(word):
    return "ERR %s\n" % word


def _atoi(s):
    """C's atoi: leading sign and digits, 0 when there are none."""
    s = s.lstrip()
    i = 0
    if s[:1] in ("+", "-"):
        i = 1
    j = i
    while j < len(s) and "0" <= s[j] <= "9":
        j += 1
    if j == i:
        return 0
    return int(s[:j])


class Session:
    def __init__(self, upsd, addr):
        self.upsd = upsd
        self.addr = addr
        # What per-source limits count by: the address, or its network
        # (an IPv6 host usually owns a whole /64).
        self.source = upsd.source_key(addr)
        self.username = None
        self.password = None
        self.user = None  # authenticated User, once credentials were checked
        self.login_ups = None
        self.tracking = False
        self.tls = False
        self.tls_peer = None  # client certificate subject, when one was given
        self.start_tls = False
        self.closing = False
        self.var_replies = {}  # request line -> (ups key, ups, state, version, fsd, reply)
        upsd.sessions.append(self)

    # -- entry points -----------------------------------------------------
    def handle_line(self, line):
        reply = self.remembered(line)
        if reply is not None:
            return reply
        try:
            words = split_line(line)
        except ParseError:
            return err("INVALID-ARGUMENT")
        reply = self.handle_words(words)
        if (reply[:4] == "VAR " and len(words) == 4 and words[0].upper() == "GET"
                and words[1].upper() == "VAR" and words[3][:7].lower() != "server."):
            self._remember(line, words[2], reply)
        return reply

    def remembered(self, line):
        """The remembered reply to a repeated GET VAR line, while still true.

        The same reply object comes back each time, so an adapter may keep
        the reply's encoded bytes next to it and check them by identity.
        """
        seen = self.var_replies.get(line)
        if seen is None:
            return None
        key, ups, state, version, fsd, reply = seen
        if (state.version == version and ups.state is state and ups.fsd == fsd
                and ups.send is not None and not ups.stale
                and self.upsd.ups.get(key) is ups):
            return reply
        return None

    def handle_words(self, words):
        if not words:
            return err("UNKNOWN-COMMAND")
        cmd = words[0].upper()
        spec = _COMMANDS.get(cmd)
        if spec is None:
            return err("UNKNOWN-COMMAND")
        method, needs_user = spec
        args = words[1:]
        if needs_user:
            if self.username is None:
                return err("USERNAME-REQUIRED")
            if self.password is None:
                return err("PASSWORD-REQUIRED")
        return method(self, args)

    def close(self):
        """The connection is gone: release its login."""
        if self.login_ups is not None:
            ups = self.upsd.get_ups(self.login_ups)
            if ups is not None and ups.numlogins > 0:
                ups.numlogins -= 1
            self.login_ups = None
        if self in self.upsd.sessions:
            self.upsd.sessions.remove(self)

    # -- helpers ----------------------------------------------------------
    def _remember(self, line, name, reply):
        """Keep a GET VAR reply with what it was computed from."""
        ups = self.upsd.get_ups(name)
        if ups is None:
            return
        if len(self.var_replies) >= MAX_REMEMBERED:
            self.var_replies = {}
        self.var_replies[line] = (name.lower(), ups, ups.state, ups.state.version, ups.fsd,
                                  reply)

    def who(self):
        return "%s@%s" % (self.username or "-", self.addr)

    def _authorized(self, action=None, instcmd=None):
        """Check the credentials (throttled per source) and a permission.

        `action` may be a tuple: any one of the actions is enough.
        """
        upsd = self.upsd
        if self.user is None:
            if upsd.throttle.blocked(self.source, upsd.now):
                upsd.log("auth", "refused user %s from %s: too many failed logins from "
                         "that address" % (self.username, self.addr), self.addr)
                return False
            users = upsd.users
            user = users.get(self.username)
            if not users.check(self.username, self.password):
                blocked = upsd.throttle.failure(self.source, upsd.now)
                upsd.log("auth", "failed login for user %s from %s%s"
                         % (self.username, self.addr,
                            " (address blocked for a while)" if blocked else ""),
                         self.addr)
                return False
            if user.allowfrom and not upsd.addr_allowed(user, self.addr):
                upsd.log("auth", "user %s not allowed from %s (allowfrom)"
                         % (self.username, self.addr), self.addr)
                return False
            upsd.throttle.success(self.source)
            self.user = user
        if action is not None:
            wanted = action if isinstance(action, tuple) else (action,)
            for a in wanted:
                if self.user.may(a):
                    break
            else:
                return False
        if instcmd is not None and not self.user.may_instcmd(instcmd):
            return False
        return True

    def _ups(self, name):
        """(ups, None) or (None, error reply) for a UPS that must be serving."""
        ups = self.upsd.get_ups(name)
        if ups is None:
            return None, err("UNKNOWN-UPS")
        if not ups.connected:
            return None, err("DRIVER-NOT-CONNECTED")
        if ups.stale:
            return None, err("DATA-STALE")
        return ups, None

    # -- commands ---------------------------------------------------------
    def cmd_ver(self, args):
        if args:
            return err("INVALID-ARGUMENT")
        return "Network UPS Tools upsd %s - https://www.networkupstools.org/\n" % (
            self.upsd.version)

    def cmd_netver(self, args):
        if args:
            return err("INVALID-ARGUMENT")
        return NETVER + "\n"

    def cmd_help(self, args):
        if args:
            return err("INVALID-ARGUMENT")
        return HELP_TEXT

    def cmd_starttls(self, args):
        if args:
            return err("INVALID-ARGUMENT")
        if self.tls:
            self.upsd.log("tls", "client %s sent STARTTLS twice" % self.addr, self.addr)
            return err("ALREADY-SSL-MODE")
        if not self.upsd.tls_available:
            return err("FEATURE-NOT-CONFIGURED")
        if self.username is not None or self.password is not None:
            # Credentials already crossed the wire in clear: refuse, so the
            # client notices instead of believing the session is protected.
            self.upsd.log("tls", "client %s sent STARTTLS after credentials" % self.addr,
                          self.addr)
            return err("INVALID-ARGUMENT")
        if not self.upsd.tls_rate.allow(self.source, self.upsd.now):
            # Close rather than answer an error: a client must not go on
            # in plaintext because the server was busy.
            self.upsd.log("tls", "client %s starts TLS too often: disconnected" % self.addr,
                          self.addr)
            self.closing = True
            return err("ACCESS-DENIED")
        self.start_tls = True
        return "OK STARTTLS\n"

    def _credential(self, args, attr, name):
        """USERNAME / PASSWORD: set once, and only over TLS when required."""
        if len(args) != 1:
            return err("INVALID-ARGUMENT")
        if getattr(self, attr) is not None:
            return err("ALREADY-SET-" + name)
        if self.upsd.require_tls and not self.tls:
            self.upsd.log("tls", "refused %s from %s before STARTTLS" % (name, self.addr),
                          self.addr)
            return err("ACCESS-DENIED")
        setattr(self, attr, args[0])
        return "OK\n"

    def cmd_username(self, args):
        return self._credential(args, "username", "USERNAME")

    def cmd_password(self, args):
        return self._credential(args, "password", "PASSWORD")

    def cmd_login(self, args):
        if len(args) != 1:
            return err("INVALID-ARGUMENT")
        if self.login_ups is not None:
            return err("ALREADY-LOGGED-IN")
        ups = self.upsd.get_ups(args[0])
        if ups is None:
            return err("UNKNOWN-UPS")
        if not self._authorized(action="LOGIN"):
            return err("ACCESS-DENIED")
        ups.numlogins += 1
        self.login_ups = ups.name
        self.upsd.log("login", "User %s logged into UPS [%s]%s"
                      % (self.who(), ups.name, " (TLS)" if self.tls else ""))
        return "OK\n"

    def cmd_logout(self, args):
        if args:
            return err("INVALID-ARGUMENT")
        if self.login_ups is not None:
            self.upsd.log("logout", "User %s logged out from UPS [%s]"
                          % (self.who(), self.login_ups))
        self.closing = True
        return "OK Goodbye\n"

    def _primary(self, args, granted):
        if len(args) != 1:
            return err("INVALID-ARGUMENT")
        if self.upsd.get_ups(args[0]) is None:
            return err("UNKNOWN-UPS")
        if not self._authorized(action=("PRIMARY", "MASTER")):
            return err("ACCESS-DENIED")
        return "OK %s\n" % granted

    def cmd_primary(self, args):
        return self._primary(args, "PRIMARY-GRANTED")

    def cmd_master(self, args):
        return self._primary(args, "MASTER-GRANTED")

    def cmd_fsd(self, args):
        if len(args) != 1:
            return err("INVALID-ARGUMENT")
        ups = self.upsd.get_ups(args[0])
        if ups is None:
            return err("UNKNOWN-UPS")
        if not self._authorized(action="FSD"):
            return err("ACCESS-DENIED")
        self.upsd.log("fsd", "Client %s set FSD on UPS [%s]" % (self.who(), ups.name))
        ups.fsd = True
        return "OK FSD-SET\n"

    # GET ------------------------------------------------------------------
    def cmd_get(self, args):
        n = len(args)
        if n < 1:
            return err("INVALID-ARGUMENT")
        sub = args[0].upper()
        if sub == "TRACKING":
            if n < 2:
                return "ON\n" if self.tracking else "OFF\n"
            if not self.tracking:
                return err("FEATURE-NOT-CONFIGURED")
            return self.upsd.tracking_get(args[1]) + "\n"
        if n < 2:
            return err("INVALID-ARGUMENT")
        name = args[1]
        if sub == "NUMLOGINS":
            ups, e = self._ups(name)
            if e:
                return e
            return "NUMLOGINS %s %d\n" % (name, ups.numlogins)
        if sub == "UPSDESC":
            ups = self.upsd.get_ups(name)
            if ups is None:
                return err("UNKNOWN-UPS")
            if ups.desc:
                return 'UPSDESC %s "%s"\n' % (name, quote(ups.desc))
            return 'UPSDESC %s "Unavailable"\n' % name
        if n < 3:
            return err("INVALID-ARGUMENT")
        item = args[2]
        if sub == "VAR":
            return self._get_var(name, item)
        if sub == "TYPE":
            return self._get_type(name, item)
        if sub == "DESC":
            ups, e = self._ups(name)
            if e:
                return e
            d = self._describe("var", item)
            return 'DESC %s %s "%s"\n' % (name, item, d)
        if sub == "CMDDESC":
            ups, e = self._ups(name)
            if e:
                return e
            d = self._describe("cmd", item)
            return 'CMDDESC %s %s "%s"\n' % (name, item, d)
        return err("INVALID-ARGUMENT")

    def _describe(self, kind, name):
        table = self.upsd.descriptions
        if name[:9] == "upstream.":
            name = name[9:]
        d = None
        if table is not None:
            d = table.var(name) if kind == "var" else table.cmd(name)
        return d or "Description unavailable"

    def _get_var(self, name, var):
        if var[:7].lower() == "server.":
            low = var.lower()
            if low == "server.info":
                return 'VAR %s server.info "Network UPS Tools upsd %s - ' \
                       'https://www.networkupstools.org/"\n' % (name, self.upsd.version)
            if low == "server.version":
                return 'VAR %s server.version "%s"\n' % (name, self.upsd.version)
            return err("VAR-NOT-SUPPORTED")
        ups, e = self._ups(name)
        if e:
            return e
        v = ups.state.get(var)
        if v is None:
            return err("VAR-NOT-SUPPORTED")
        if ups.fsd and var.lower() == "ups.status":
            return 'VAR %s %s "FSD %s"\n' % (name, var, quote(v.value))
        return 'VAR %s %s "%s"\n' % (name, var, quote(v.value))

    def _get_type(self, name, var):
        ups, e = self._ups(name)
        if e:
            return e
        v = ups.state.get(var)
        if v is None:
            return err("VAR-NOT-SUPPORTED")
        out = "TYPE %s %s" % (name, var)
        if v.flags & 1:
            out += " RW"
        if v.enums:
            out += " ENUM"
        if v.ranges:
            out += " RANGE"
        if v.flags & 2:
            return "%s STRING:%d\n" % (out, v.aux)
        return out + " NUMBER\n"

    # LIST -----------------------------------------------------------------
    def cmd_list(self, args):
        n = len(args)
        if n < 1:
            return err("INVALID-ARGUMENT")
        sub = args[0].upper()
        if sub == "UPS":
            parts = ["BEGIN LIST UPS\n"]
            for ups in self.upsd.ups.values():
                desc = quote(ups.desc) if ups.desc else "Description unavailable"
                parts.append('UPS %s "%s"\n' % (ups.name, desc))
            parts.append("END LIST UPS\n")
            return "".join(parts)
        if n < 2:
            return err("INVALID-ARGUMENT")
        name = args[1]
        if sub == "CLIENT":
            ups = self.upsd.get_ups(name)
            if ups is None:
                return err("UNKNOWN-UPS")
            parts = ["BEGIN LIST CLIENT %s\n" % name]
            for s in self.upsd.sessions:
                if s.login_ups is not None and s.login_ups.lower() == ups.name.lower():
                    parts.append("CLIENT %s %s\n" % (s.login_ups, s.addr))
            parts.append("END LIST CLIENT %s\n" % name)
            return "".join(parts)
        if sub in ("VAR", "RW", "CMD"):
            ups, e = self._ups(name)
            if e:
                return e
            if sub == "VAR":
                return ups.list_var_reply(name)
            parts = ["BEGIN LIST %s %s\n" % (sub, name)]
            if sub == "RW":
                for v in ups.state.sorted_vars():
                    if v.flags & 1:
                        parts.append('RW %s %s "%s"\n' % (name, v.name, quote(v.value)))
            else:
                for c in ups.state.sorted_cmds():
                    parts.append("CMD %s %s\n" % (name, c))
            parts.append("END LIST %s %s\n" % (sub, name))
            return "".join(parts)
        if n < 3:
            return err("INVALID-ARGUMENT")
        var = args[2]
        if sub in ("ENUM", "RANGE"):
            ups, e = self._ups(name)
            if e:
                return e
            v = ups.state.get(var)
            if v is None:
                return err("VAR-NOT-SUPPORTED")
            parts = ["BEGIN LIST %s %s %s\n" % (sub, name, var)]
            if sub == "ENUM":
                for x in v.enums:
                    parts.append('ENUM %s %s "%s"\n' % (name, var, quote(x)))
            else:
                for lo, hi in v.ranges:
                    parts.append('RANGE %s %s "%d" "%d"\n' % (name, var, lo, hi))
            parts.append("END LIST %s %s %s\n" % (sub, name, var))
            return "".join(parts)
        return err("INVALID-ARGUMENT")

    # SET / INSTCMD --------------------------------------------------------
    def cmd_set(self, args):
        n = len(args)
        if n < 2:
            return err("INVALID-ARGUMENT")
        sub = args[0].upper()
        if sub == "VAR":
            if n < 4:
                return err("INVALID-ARGUMENT")
            return self._set_var(args[1], args[2], args[3])
        if sub == "TRACKING":
            mode = args[1].upper()
            if mode == "ON":
                self.tracking = True
            elif mode == "OFF":
                self.tracking = False
            else:
                return err("INVALID-ARGUMENT")
            return "OK\n"
        return err("INVALID-ARGUMENT")

    def _set_var(self, name, var, value):
        ups, e = self._ups(name)
        if e:
            return e
        if not self._authorized(action="SET"):
            return err("ACCESS-DENIED")
        v = ups.state.get(var)
        if v is None:
            return err("VAR-NOT-SUPPORTED")
        if not v.flags & 1:
            return err("READONLY")
        if v.flags & 2:
            if v.aux < 1:
                return err("SET-FAILED")
            if v.aux < len(value):
                return err("TOO-LONG")
        if v.enums and value not in v.enums:
            return err("INVALID-VALUE")
        if v.ranges:
            x = _atoi(value)
            for lo, hi in v.ranges:
                if lo <= x <= hi:
                    break
            else:
                return err("INVALID-VALUE")
        line = 'SET %s "%s"' % (var, quote(value))
        tid = self.upsd.tracking_add() if self.tracking else None
        if tid:
            line += " TRACKING " + tid
        self.upsd.log("set", "Set variable: %s set %s on %s to %s"
                      % (self.who(), var, ups.name, value))
        if ups.send(line + "\n") is False:
            return err("SET-FAILED")
        return "OK TRACKING %s\n" % tid if tid else "OK\n"

    def cmd_instcmd(self, args):
        n = len(args)
        if n < 2:
            return err("INVALID-ARGUMENT")
        name, cmd = args[0], args[1]
        param = args[2] if n == 3 else None
        ups, e = self._ups(name)
        if e:
            return e
        if not ups.state.has_cmd(cmd):
            return err("CMD-NOT-SUPPORTED")
        if not self._authorized(instcmd=cmd):
            return err("ACCESS-DENIED")
        line = "INSTCMD " + cmd
        if param is not None:
            line += ' "%s"' % quote(param)
        tid = self.upsd.tracking_add() if self.tracking else None
        if tid:
            line += " TRACKING " + tid
        self.upsd.log("instcmd", "Instant command: %s did %s%s on %s"
                      % (self.who(), cmd, " with value " + param if param else "", ups.name))
        if ups.send(line + "\n") is False:
            return err("INSTCMD-FAILED")
        return "OK TRACKING %s\n" % tid if tid else "OK\n"


_COMMANDS = {
    "VER": (Session.cmd_ver, False),
    "NETVER": (Session.cmd_netver, False),
    "PROTVER": (Session.cmd_netver, False),
    "HELP": (Session.cmd_help, False),
    "STARTTLS": (Session.cmd_starttls, False),
    "GET": (Session.cmd_get, False),
    "LIST": (Session.cmd_list, False),
    "USERNAME": (Session.cmd_username, False),
    "PASSWORD": (Session.cmd_password, False),
    "LOGIN": (Session.cmd_login, True),
    "LOGOUT": (Session.cmd_logout, False),
    "PRIMARY": (Session.cmd_primary, True),
    "MASTER": (Session.cmd_master, True),
    "FSD": (Session.cmd_fsd, True),
    "SET": (Session.cmd_set, True),
    "INSTCMD": (Session.cmd_instcmd, True),
}
