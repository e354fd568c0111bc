"""The unprivileged half of upsmon: talk to the servers, act on decisions.

One `Link` per MONITOR line keeps its connection open (STARTTLS, USERNAME,
PASSWORD, LOGIN, then PRIMARY for a primary, as NUT's upsmon does) and
polls `ups.status`. The `Runner` polls every link in parallel threads,
feeds the results to the core state machine (nutapp.core.upsmon) and
carries out what it decides; the power-down itself is asked of the
privileged side through `privileged.shutdown()`.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from nutapp.clients.client import ConnectionFailed, NutClient, ServerError
from nutapp.clients.tls import ClientTls
from nutapp.core import upsmon as core
from nutapp.core.errors import NutError

from .notify import Notifier

log = logging.getLogger("nutapp.upsmon")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}


def client_tls(conf):
    """The TLS policy of upsmon.conf (CERTPATH, CERTVERIFY, FORCESSL, CERTHOST...)."""
    kw = dict(certpath=conf.certpath, certverify=conf.certverify, forcessl=conf.forcessl,
              certhosts=dict(conf.certhosts), certfile=conf.certfile)
    if conf.certident:
        kw["keypass"] = conf.certident[1]
    return ClientTls(**kw)


class Link:
    """The connection for one MONITOR line."""

    def __init__(self, monitor, tls, timeout=10.0):
        self.monitor = monitor
        self.tls = tls
        self.timeout = timeout
        self.client = None

    @property
    def name(self):
        return self.monitor.system

    def connect(self):
        m = self.monitor
        c = NutClient(m.host, m.port, timeout=self.timeout, tls=self.tls)
        try:
            c.connect()
            c.authenticate(m.user, m.password)
            c.login(m.upsname)
            if m.primary:
                c.primary(m.upsname)
        except Exception:
            c.close()
            raise
        self.client = c
        log.info("UPS %s: logged in as %s (%s%s)", m.system, m.user,
                 "primary" if m.primary else "secondary", ", TLS" if c.is_tls else "")

    def poll(self):
        """(ups.status, ups.alarm or None); raises NutError when it can't."""
        if self.client is None:
            self.connect()
        try:
            status = self.client.get_var(self.monitor.upsname, "ups.status")
            alarm = None
            if "ALARM" in status.upper().split():
                try:
                    alarm = self.client.get_var(self.monitor.upsname, "ups.alarm")
                except ServerError:
                    pass
            return status, alarm
        except ServerError:
            raise  # the server answered: the connection is fine
        except (NutError, OSError, IndexError):
            self.drop()
            raise

    def numlogins(self):
        if self.client is None:
            self.connect()
        try:
            return self.client.get_numlogins(self.monitor.upsname)
        except ServerError:
            raise
        except (NutError, OSError, IndexError, ValueError):
            self.drop()
            raise

    def set_fsd(self):
        if self.client is None:
            self.connect()
        self.client.fsd(self.monitor.upsname)

    def drop(self):
        if self.client is not None:
            self.client.close()
            self.client = None

    def logout(self):
        if self.client is None:
            return
        try:
            self.client.logout()
        except NutError:
            pass
        self.drop()


def describe(exc):
    if isinstance(exc, ServerError):
        return "server answered ERR %s (%s)" % (exc.word, exc)
    if isinstance(exc, ConnectionFailed):
        return str(exc)
    return str(exc) or exc.__class__.__name__


class Runner:
    """The monitoring loop; `run()` returns when stopped or after the shutdown."""

    def __init__(self, config, privileged, notifier=None, indicators=None,
                 reload=None, clock=time.monotonic, timeout=10.0):
        self.config = config
        self.core = core.Upsmon(config)
        self.privileged = privileged
        self.notifier = notifier or Notifier(config.notifycmd)
        self.indicators = indicators
        self.reload_config = reload
        self.clock = clock
        self.timeout = timeout
        self.tls = client_tls(config)
        self.links = [Link(m, self.tls, timeout) for m in config.monitors]
        self.wake = threading.Event()
        self.stop_requested = False
        self.fsd_requested = None
        self.reload_requested = False
        self.pool = None
        self.button = None

    # -- requests from signals, buttons and tests ------------------------
    def request_stop(self):
        self.stop_requested = True
        self.wake.set()

    def request_fsd(self, who="an operator (upsmon -c fsd)"):
        self.fsd_requested = who
        self.wake.set()

    def request_reload(self):
        self.reload_requested = True
        self.wake.set()

    # -- the loop --------------------------------------------------------
    def run(self):
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(self.links)),
                                       thread_name_prefix="upsmon-poll")
        self._announce()
        try:
            while not self.stop_requested:
                try:
                    self._cycle()
                except Exception:  # a bug must not end the monitoring
                    log.exception("internal error in the monitoring loop; carrying on")
                if self.core.phase == core.DONE:
                    break
                self._show()
                self.notifier.reap()
                wait = self.core.interval(self.clock())
                self.wake.wait(wait)
                self.wake.clear()
        finally:
            self._close()
        return 0

    def _announce(self):
        for m in self.config.monitors:
            if m.powervalue:
                log.info("monitoring UPS %s as %s (power value %d)", m.system,
                         "primary" if m.primary else "secondary", m.powervalue)
            else:
                log.info("monitoring UPS %s (monitoring only, power value 0)", m.system)

    def _cycle(self):
        if self.reload_requested:
            self.reload_requested = False
            self._reload()
        if self.fsd_requested and self.core.phase == core.MONITOR:
            who, self.fsd_requested = self.fsd_requested, None
            self._execute(self.core.user_fsd(self.clock(), who))
        phase = self.core.phase
        if phase == core.MONITOR:
            self._poll_round()
            self._execute(self.core.recalc(self.clock()))
        elif phase == core.HOSTSYNC:
            counts = self._numlogins()
            self._execute(self.core.numlogins(counts, self.clock()))
            self._execute(self.core.tick(self.clock()))
        else:
            self._execute(self.core.tick(self.clock()))
        if not self.privileged.alive():
            self._execute(self.core.parent_gone(self.clock()))

    def _poll_round(self):
        def one(link):
            try:
                status, alarm = link.poll()
                return link.name, self.clock(), status, alarm, None
            except Exception as e:  # any failure is "no contact" for the core
                return link.name, self.clock(), None, None, e

        for name, when, status, alarm, err in self.pool.map(one, list(self.links)):
            if err is None:
                log.debug("UPS %s: ups.status %s", name, status)
                self._execute(self.core.poll_ok(name, when, status, alarm))
            else:
                self._execute(self.core.poll_failed(name, when, describe(err)))

    def _numlogins(self):
        primaries = [l for l in self.links if l.monitor.primary]

        def one(link):
            try:
                return link.name, link.numlogins()
            except Exception as e:
                log.error("UPS %s: can't read NUMLOGINS: %s", link.name, describe(e))
                return link.name, None

        return dict(self.pool.map(one, primaries))

    def _execute(self, actions):
        for a in actions:
            if a.kind == "notify":
                self.notifier.notify(a)
            elif a.kind == "log":
                log.log(_LEVELS.get(a.level, logging.INFO), "%s", a.message)
            elif a.kind == "set_fsd":
                self._set_fsd(a.ups)
            elif a.kind == "shutdown":
                self._show()
                if not self.privileged.shutdown():
                    log.critical("could not hand the shutdown to the privileged process: "
                                 "this host will NOT shut down by itself; shut it down now")

    def _set_fsd(self, name):
        link = self._link(name)
        try:
            link.set_fsd()
        except Exception as e:
            log.error("UPS %s: setting FSD failed: %s; the secondaries will still shut down "
                      "when they see the low battery", name, describe(e))
            return
        log.warning("UPS %s: FSD set on the server; its secondaries shut down now", name)
        self._execute(self.core.fsd_set(name, self.clock()))

    def _link(self, name):
        for l in self.links:
            if l.name == name:
                return l
        raise KeyError(name)

    def _show(self):
        if self.indicators is not None:
            try:
                self.indicators.show(self.core.indicator())
            except Exception as e:
                log.error("status LEDs: %s", e)

    def _reload(self):
        if self.reload_config is None:
            return
        try:
            conf = self.reload_config()
        except (NutError, OSError) as e:
            log.error("reload failed, keeping the running configuration: %s", e)
            return
        log.info("configuration reloaded from %s", conf.filename)
        for w in conf.warnings:
            log.warning("%s", w)
        old = self.config
        for attr in ("shutdowncmd", "powerdownflag", "gpio_powercut"):
            if repr(getattr(old, attr)) != repr(getattr(conf, attr)):
                log.warning("%s changed: the privileged process keeps the old value until "
                            "upsmon restarts", attr.upper())
        keep = {}
        for l in self.links:
            keep[l.name] = l
        links = []
        self.tls = client_tls(conf)
        for m in conf.monitors:
            l = keep.pop(m.system, None)
            if l is not None and _same_login(l.monitor, m):
                l.monitor = m
                l.tls = self.tls
            else:
                if l is not None:
                    l.logout()
                l = Link(m, self.tls, self.timeout)
            links.append(l)
        for l in keep.values():
            log.info("no longer monitoring UPS %s", l.name)
            l.logout()
        self.links = links
        self.config = conf
        self.notifier.notifycmd = conf.notifycmd
        self.core.reconfigure(conf)
        self.pool.shutdown(wait=False)
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(self.links)),
                                       thread_name_prefix="upsmon-poll")

    def _close(self):
        if self.core.phase != core.DONE:
            log.info("stopping: logging out from %d UPS(es); this host is no longer "
                     "protected by upsmon", len(self.links))
        for l in self.links:
            l.logout()
        if self.pool is not None:
            self.pool.shutdown(wait=False)
        self.notifier.reap()


def _same_login(a, b):
    return (a.host, a.port, a.upsname, a.user, a.password, a.primary) == \
        (b.host, b.port, b.upsname, b.user, b.password, b.primary)
