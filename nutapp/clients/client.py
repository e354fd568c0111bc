"""A blocking NUT protocol client (what NUT's libupsclient is to its tools).

`NutClient` connects, optionally upgrades to TLS with STARTTLS, and offers
one method per protocol request. Server errors raise `ServerError` carrying
NUT's word and the message NUT's clients print for it.
"""

import socket

from nutapp.core.errors import NutError
from nutapp.core.parseconf import quote, split_line

DEFAULT_PORT = 3493

# What NUT's client library prints for each server error word.
ERROR_TEXT = {
    "VAR-NOT-SUPPORTED": "Variable not supported by UPS",
    "UNKNOWN-UPS": "Unknown UPS",
    "ACCESS-DENIED": "Access denied",
    "PASSWORD-REQUIRED": "Password required",
    "PASSWORD-INCORRECT": "Password incorrect",
    "MISSING-ARGUMENT": "Missing argument",
    "DATA-STALE": "Data stale",
    "VAR-UNKNOWN": "Variable unknown",
    "ALREADY-LOGGED-IN": "Already logged in",
    "ALREADY-SET-PASSWORD": "Already set password",
    "UNKNOWN-TYPE": "Unknown variable type",
    "UNKNOWN-VAR": "Unknown variable",
    "READONLY": "Read-only variable",
    "TOO-LONG": "New value is too long",
    "INVALID-VALUE": "Invalid value for variable",
    "SET-FAILED": "Set command failed",
    "UNKNOWN-INSTCMD": "Unknown instant command",
    "INSTCMD-FAILED": "Instant command failed",
    "CMD-NOT-SUPPORTED": "Instant command not supported",
    "INVALID-USERNAME": "Invalid username",
    "ALREADY-SET-USERNAME": "Already set username",
    "UNKNOWN-COMMAND": "Unknown command",
    "INVALID-PASSWORD": "Invalid password",
    "USERNAME-REQUIRED": "Username required",
    "DRIVER-NOT-CONNECTED": "Driver not connected",
    "INVALID-ARGUMENT": "Invalid argument",
    "FEATURE-NOT-CONFIGURED": "SSL is not available",
    "FEATURE-NOT-SUPPORTED": "Feature not supported",
    "ALREADY-SSL-MODE": "Already in SSL mode",
}


class ServerError(NutError):
    """The server answered ``ERR <word>``."""

    def __init__(self, word, extra=""):
        NutError.__init__(self, ERROR_TEXT.get(word, "Unknown error (%s)" % word), word)
        self.extra = extra


class ConnectionFailed(NutError):
    pass


def parse_ups_spec(spec, default_host="localhost"):
    """`ups[@host[:port]]` -> (ups or None, host, port). IPv6 hosts in []."""
    ups, at, hostpart = spec.rpartition("@")
    if not at:
        ups, hostpart = spec, ""
    host, port = default_host, DEFAULT_PORT
    if hostpart:
        if hostpart.startswith("["):
            end = hostpart.find("]")
            host = hostpart[1:end]
            rest = hostpart[end + 1:]
            if rest.startswith(":"):
                port = int(rest[1:])
        elif hostpart.count(":") == 1:
            host, p = hostpart.split(":")
            port = int(p)
        else:
            host = hostpart
    return (ups or None), host, port


class NutClient:
    def __init__(self, host="localhost", port=DEFAULT_PORT, timeout=10.0, tls=None):
        """`tls`: a nutapp.clients.tls.ClientTls deciding STARTTLS, or None."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self.sock = None
        self.buf = b""
        self.is_tls = False

    def connect(self):
        try:
            self.sock = socket.create_connection((self.host, self.port), self.timeout)
        except OSError as e:
            raise ConnectionFailed("Connection failure: %s" % (e.strerror or e))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            self.tls.negotiate(self)
        return self

    def __enter__(self):
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    # -- wire ---------------------------------------------------------------
    def send(self, line):
        try:
            self.sock.sendall((line + "\n").encode("utf-8"))
        except OSError as e:
            raise ConnectionFailed("Write error: %s" % (e.strerror or e))

    def readline(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:
                raise ConnectionFailed("Read error: %s" % (e.strerror or e))
            if not chunk:
                raise ConnectionFailed("Server disconnected")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def query(self, line):
        """Send one request; return its one-line reply, or raise ServerError."""
        self.send(line)
        return self._check(self.readline())

    @staticmethod
    def _check(reply):
        if reply.startswith("ERR "):
            parts = reply.split(None, 2)
            word = parts[1] if len(parts) > 1 else ""
            raise ServerError(word, parts[2] if len(parts) > 2 else "")
        return reply

    def list(self, *args):
        """LIST <args>: the items' words after the query words."""
        q = " ".join(args)
        self.send("LIST " + q)
        first = self._check(self.readline())
        if first != "BEGIN LIST " + q and first.upper() != ("BEGIN LIST " + q).upper():
            raise NutError("Invalid response from server: %r" % first)
        n = len(args) - 1
        items = []
        while True:
            line = self.readline()
            if line.startswith("END LIST"):
                return items
            words = split_line(line, 0, 0)
            items.append(words[1 + n:] if len(words) > 1 + n else [])

    # -- requests -----------------------------------------------------------
    def get_var(self, ups, var):
        return split_line(self.query("GET VAR %s %s" % (ups, var)), 0, 0)[3]

    def list_vars(self, ups):
        return [(w[0], w[1]) for w in self.list("VAR", ups)]

    def list_ups(self):
        return [(w[0], w[1]) for w in self.list("UPS")]

    def list_rw(self, ups):
        return [(w[0], w[1]) for w in self.list("RW", ups)]

    def list_cmds(self, ups):
        return [w[0] for w in self.list("CMD", ups)]

    def list_clients(self, ups):
        return [w[0] for w in self.list("CLIENT", ups)]

    def list_enum(self, ups, var):
        return [w[0] for w in self.list("ENUM", ups, var)]

    def list_range(self, ups, var):
        return [(int(w[0]), int(w[1])) for w in self.list("RANGE", ups, var)]

    def get_type(self, ups, var):
        return split_line(self.query("GET TYPE %s %s" % (ups, var)), 0, 0)[3:]

    def get_desc(self, ups, var):
        return split_line(self.query("GET DESC %s %s" % (ups, var)), 0, 0)[3]

    def get_cmddesc(self, ups, cmd):
        return split_line(self.query("GET CMDDESC %s %s" % (ups, cmd)), 0, 0)[3]

    def get_numlogins(self, ups):
        return int(split_line(self.query("GET NUMLOGINS %s" % ups), 0, 0)[2])

    def authenticate(self, username, password):
        self.query("USERNAME %s" % _arg(username))
        self.query("PASSWORD %s" % _arg(password))

    def login(self, ups):
        self.query("LOGIN %s" % ups)

    def primary(self, ups):
        try:
            return self.query("PRIMARY %s" % ups)
        except ServerError as e:
            if e.word != "UNKNOWN-COMMAND":
                raise
            return self.query("MASTER %s" % ups)

    def fsd(self, ups):
        return self.query("FSD %s" % ups)

    def set_var(self, ups, var, value):
        return self.query('SET VAR %s %s "%s"' % (ups, var, quote(value)))

    def instcmd(self, ups, cmd, param=None):
        line = "INSTCMD %s %s" % (ups, cmd)
        if param is not None:
            line += ' "%s"' % quote(param)
        return self.query(line)

    def tracking(self, on=True):
        return self.query("SET TRACKING %s" % ("ON" if on else "OFF"))

    def get_tracking(self, tid):
        return self.query("GET TRACKING %s" % tid)

    def logout(self):
        try:
            return self.query("LOGOUT")
        except ConnectionFailed:
            return None


def _arg(word):
    """Quote a word only when it needs it (NUT's clients send it bare)."""
    if word and not any(c in word for c in ' \t"\\#='):
        return word
    return '"%s"' % quote(word)
