"""The server's model: UPSes fed by drivers, clients' sessions, tracking.

`Upsd` knows every UPS declared in ups.conf and what its driver last said;
`nutapp.core.session.Session` turns one client's requests into replies using
it. Time comes in as `now` (seconds, monotonic) set by the adapter; random
tracking ids come from `make_id`, also installed by the adapter.
"""

from .state import UpsState, apply_sock_words
from .parseconf import split_line
from .errors import ParseError

# Driver socket TRACKING status numbers and what GET TRACKING answers.
_TRACKING_TEXT = {-1: "PENDING", 0: "SUCCESS", 1: "ERR UNKNOWN",
                  2: "ERR INVALID-ARGUMENT", 3: "ERR FAILED", 4: "ERR INVALID-ARGUMENT"}


class Ups:
    """One UPS as upsd sees it."""

    def __init__(self, name, desc=None, driver=None, port=None):
        self.name = name
        self.desc = desc
        self.driver = driver
        self.port = port
        self.state = UpsState()
        self.send = None  # callable(line) while the driver is connected
        self.dumpdone = False
        self.data_ok = False
        self.stale = True
        self.last_heard = 0.0
        self.last_ping = 0.0
        self.fsd = False
        self.numlogins = 0
        self.status_placeholder = False
        self._list_cache = {}

    @property
    def connected(self):
        return self.send is not None

    def driver_connected(self, send, now):
        self.send = send
        self.state.clear()
        # A placeholder while the dump comes in; dropped at DUMPDONE if the
        # driver has no ups.status of its own.
        self.state.setinfo("ups.status", "WAIT")
        self.status_placeholder = True
        self.dumpdone = False
        self.data_ok = False
        self.stale = True
        self.last_heard = now
        self.last_ping = now

    def driver_lost(self):
        self.send = None
        self.dumpdone = False
        self.stale = True

    def list_var_reply(self, spelled):
        """BEGIN/VAR.../END LIST VAR, cached until the state changes."""
        key = (spelled, self.state.version, self.fsd)
        text = self._list_cache.get(key)
        if text is None:
            from .parseconf import quote

            parts = ["BEGIN LIST VAR %s\n" % spelled]
            for v in self.state.sorted_vars():
                val = quote(v.value)
                if self.fsd and v.name.lower() == "ups.status":
                    val = "FSD " + val
                parts.append('VAR %s %s "%s"\n' % (spelled, v.name, val))
            parts.append("END LIST VAR %s\n" % spelled)
            text = "".join(parts)
            if len(self._list_cache) > 8:
                self._list_cache = {}
            self._list_cache[key] = text
        return text


class LoginThrottle:
    """Failed credential checks per source address.

    After `limit` failures within `window` seconds an address is refused
    without checking for `lockout` seconds, doubling on each repeat, so that
    guessing over the network is impractical. Memory is bounded by
    `max_sources` (oldest entries are dropped).
    """

    def __init__(self, limit=5, window=60.0, lockout=30.0, max_lockout=3600.0,
                 max_sources=4096):
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.max_lockout = max_lockout
        self.max_sources = max_sources
        self.sources = {}  # addr -> [failures, first_time, blocked_until, strikes]

    def blocked(self, addr, now):
        e = self.sources.get(addr)
        return e is not None and e[2] > now

    def failure(self, addr, now):
        """Record a failure; returns True if the address is now blocked."""
        e = self.sources.get(addr)
        if e is None or now - e[1] > self.window and e[2] <= now:
            strikes = e[3] if e is not None else 0
            if len(self.sources) >= self.max_sources:
                self._evict(now)
            e = [0, now, 0.0, strikes]
            self.sources[addr] = e
        e[0] += 1
        if e[0] >= self.limit:
            length = min(self.lockout * (2 ** e[3]), self.max_lockout)
            e[2] = now + length
            e[3] += 1
            e[0] = 0
            e[1] = now
            return True
        return False

    def success(self, addr):
        e = self.sources.get(addr)
        if e is not None and e[2] == 0.0:
            del self.sources[addr]

    def _evict(self, now):
        for addr in list(self.sources):
            e = self.sources[addr]
            if e[2] <= now:
                del self.sources[addr]
        while len(self.sources) >= self.max_sources:
            self.sources.pop(next(iter(self.sources)))


class SourceRate:
    """A token bucket per source address: `burst` events at once, then
    `rate` per second. Memory is bounded by `max_sources`."""

    def __init__(self, rate=16.0, burst=64, max_sources=4096):
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self.sources = {}  # addr -> [tokens, last_time]

    def allow(self, addr, now):
        e = self.sources.get(addr)
        if e is None:
            if len(self.sources) >= self.max_sources:
                self.sources.clear()  # a flood of sources: start afresh
            e = [float(self.burst), now]
            self.sources[addr] = e
        e[0] = min(float(self.burst), e[0] + (now - e[1]) * self.rate)
        e[1] = now
        if e[0] < 1.0:
            return False
        e[0] -= 1.0
        return True


class Upsd:
    def __init__(self, conf, users, version="2.8.0"):
        self.conf = conf
        self.users = users
        self.version = version
        self.ups = {}  # lower-case name -> Ups
        self.sessions = []
        self.tracking = {}  # id (upper) -> [status, time]
        self.now = 0.0
        self.make_id = None
        self.tls_available = False
        self.require_tls = conf.require_tls
        self.throttle = LoginThrottle()
        # TLS handshakes cost the server far more than the client: at most
        # 64 at once, then 16 a second, per source address.
        self.tls_rate = SourceRate()
        self.descriptions = None  # object with .var(name) / .cmd(name)
        self.addr_allowed = lambda user, addr: True
        self.source_key = lambda addr: addr  # the adapter groups IPv6 by /64
        # The adapter installs a logger: log(event, msg, source=None); security
        # events name their source address so it can rate-limit per source.
        self.log = lambda event, msg, source=None: None

    # -- UPS table --------------------------------------------------------
    def get_ups(self, name):
        return self.ups.get(name.lower())

    def set_ups_table(self, sections):
        """(Re)load the UPS list from ups.conf sections, keeping live state.

        Returns (added, removed) name lists.
        """
        new = {}
        added = []
        for s in sections:
            key = s.name.lower()
            ups = self.ups.get(key)
            if ups is None:
                ups = Ups(s.name)
                added.append(s.name)
            ups.desc = s.desc
            ups.driver = s.driver
            ups.port = s.port
            new[key] = ups
        removed = [u.name for k, u in self.ups.items() if k not in new]
        self.ups = new
        return added, removed

    # -- driver side ------------------------------------------------------
    def driver_line(self, ups, line):
        """Handle one line from `ups`'s driver."""
        ups.last_heard = self.now
        try:
            words = split_line(line, max_words=0, max_len=0)
        except ParseError:
            return
        if not words:
            return
        if apply_sock_words(ups.state, words):
            if ups.status_placeholder and len(words) > 1 and words[1].lower() == "ups.status":
                ups.status_placeholder = False
            return
        cmd = words[0].upper()
        if cmd == "DUMPDONE":
            ups.dumpdone = True
            if ups.status_placeholder:
                ups.state.delinfo("ups.status")
                ups.status_placeholder = False
        elif cmd == "DATAOK":
            ups.data_ok = True
        elif cmd == "DATASTALE":
            ups.data_ok = False
        elif cmd == "TRACKING" and len(words) >= 3:
            item = self.tracking.get(words[1].upper())
            if item is not None:
                try:
                    item[0] = int(words[2])
                except ValueError:
                    item[0] = 3
        # PONG and anything unknown only refresh last_heard.
        self._update_stale(ups)

    def _update_stale(self, ups):
        stale = not (ups.connected and ups.dumpdone and ups.data_ok
                     and self.now - ups.last_heard <= self.conf.maxage)
        if stale != ups.stale:
            ups.stale = stale
            if stale:
                self.log("stale", "Data for UPS [%s] is stale - check driver" % ups.name)
            else:
                self.log("ok", "UPS [%s] data is no longer stale" % ups.name)

    def tick(self):
        """Periodic housekeeping: ping quiet drivers, mark stale, expire tracking."""
        third = self.conf.maxage / 3.0
        for ups in self.ups.values():
            if ups.connected:
                quiet = self.now - ups.last_heard
                if quiet > third and self.now - ups.last_ping > third:
                    ups.last_ping = self.now
                    ups.send("PING\n")
            self._update_stale(ups)
        if self.tracking:
            limit = self.now - self.conf.trackingdelay
            for k in [k for k, v in self.tracking.items() if v[1] < limit]:
                del self.tracking[k]

    # -- tracking ---------------------------------------------------------
    def tracking_add(self):
        tid = self.make_id()
        self.tracking[tid] = [-1, self.now]
        return tid

    def tracking_get(self, tid):
        item = self.tracking.get(tid.upper())
        if item is None:
            return "ERR UNKNOWN"
        return _TRACKING_TEXT.get(item[0], "ERR UNKNOWN")
