"""Deliver upsmon's notifications: syslog (our log), wall, NOTIFYCMD.

NOTIFYCMD runs as NUT runs it: the configured argv plus the message as one
last argument, with NOTIFYTYPE and UPSNAME in the environment, in the
background so a slow script never holds up monitoring.
"""

import logging
import os
import subprocess

from nutapp.core import upsmon as core

log = logging.getLogger("nutapp.upsmon")

# Notifications an operator must see: logged as warnings.
_URGENT = ("ONBATT", "LOWBATT", "FSD", "COMMBAD", "SHUTDOWN", "SHUTDOWN_HOSTSYNC", "NOCOMM",
           "NOPARENT", "REPLBATT", "OVER", "BYPASS", "ALARM", "OFF")


class Notifier:
    def __init__(self, notifycmd=None, wall="wall"):
        self.notifycmd = notifycmd
        self.wall_cmd = wall
        self.children = []
        self.wall_missing = False

    def notify(self, action):
        flags = action.flags
        if flags & core.IGNORE:
            return
        if flags & core.SYSLOG:
            level = logging.WARNING if action.ntype in _URGENT else logging.INFO
            log.log(level, "%s", action.message)
        if flags & core.WALL:
            self.wall(action.message)
        if flags & core.EXEC:
            self.execute(action)

    def wall(self, message):
        if self.wall_missing:
            return
        try:
            p = subprocess.Popen([self.wall_cmd], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 close_fds=True)
        except OSError as e:
            self.wall_missing = True
            log.error("can't run %s to tell logged-in users (%s); WALL notifications are off",
                      self.wall_cmd, e.strerror or e)
            return
        try:
            p.stdin.write((message + "\n").encode("utf-8", "replace"))
            p.stdin.close()
        except OSError:
            pass
        self.children.append(p)

    def execute(self, action):
        if not self.notifycmd:
            return
        env = dict(os.environ, NOTIFYTYPE=action.ntype, UPSNAME=action.ups or "")
        try:
            p = subprocess.Popen(list(self.notifycmd) + [action.message], env=env,
                                 stdin=subprocess.DEVNULL, close_fds=True)
        except OSError as e:
            log.error("NOTIFYCMD %s failed to start for %s: %s",
                      self.notifycmd[0], action.ntype, e.strerror or e)
            return
        self.children.append(p)

    def reap(self):
        """Collect finished helpers (no zombies)."""
        self.children = [p for p in self.children if p.poll() is None]

    def wait(self, timeout=5.0):
        for p in self.children:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.reap()
