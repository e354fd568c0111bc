"""A simulated Megatec/Q1 UPS at the far end of a pseudo-terminal.

The driver opens the pty's slave side through a symlink, as it would open
/dev/ttyUSB0; the simulator reads commands from the master side and
answers them the way a real unit does: Q1, F and I get their fixed-width
records, commands get no answer (or an echo when the unit refuses them).

The default values are those of a TS Shara XPro UPS Senoidal 1500VA on
nutdrv_qx 2.8.0, protocol megatec, port /dev/ttyACM0 (nut-ddl:
TS_Shara/TS_Shara__XPro_UPS_Senoidal_1500VA__nutdrv_qx__2.8.0__01.dev).
The Q1 and I records are rebuilt from that dump's upsc values field by
field. The dump has no input.voltage.nominal although it has the other
three ratings, so the F record carries a non-numeric first field, which
is what makes NUT leave that variable out.
"""

import os
import select
import threading

Q1_ONLINE = "(128.0 128.0 126.0 000 60.0 27.4 28.0 00001001"
RATINGS = "#---.- 100 024.0 60.0"
VENDOR = "#TS -222  240711 Senoid  15 V010203057"


class MegatecSim:
    def __init__(self, link_path, owner=None):
        self.link_path = link_path
        # (uid, gid) to give the pty to, for a driver that drops root
        # before it opens its port.
        self.owner = owner
        self.q1 = Q1_ONLINE
        self.ratings = RATINGS
        self.vendor = VENDOR
        self.mute = False         # answer nothing at all
        self.garbage = None       # bytes sent instead of any answer
        self.refuse = set()       # commands echoed back instead of obeyed
        self.received = []        # every command, without its CR
        self._lock = threading.Lock()
        self._master = None
        self._slave = None
        self._thread = None
        self._stop = None
        self.plug()

    # -- the cable ------------------------------------------------------
    def plug(self):
        """Create a fresh pty and point the link at its slave side."""
        master, slave = os.openpty()
        self._master, self._slave = master, slave
        if os.path.lexists(self.link_path):
            os.unlink(self.link_path)
        if self.owner is not None:
            os.chown(os.ttyname(slave), *self.owner)
        os.symlink(os.ttyname(slave), self.link_path)
        self._stop = os.pipe()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def unplug(self):
        """Pull the cable: the pty goes away and so does the device node."""
        os.write(self._stop[1], b"x")
        self._thread.join(5)
        for fd in (self._master, self._slave) + self._stop:
            os.close(fd)
        self._master = self._slave = None
        if os.path.lexists(self.link_path):
            os.unlink(self.link_path)

    close = unplug

    # -- the unit ---------------------------------------------------------
    def answer(self, command):
        """The bytes a Megatec unit sends back for one command."""
        with self._lock:
            self.received.append(command)
            if self.mute:
                return b""
            if self.garbage is not None:
                return self.garbage
            if command == "Q1":
                return (self.q1 + "\r").encode()
            if command == "F":
                return (self.ratings + "\r").encode()
            if command == "I":
                return (self.vendor + "\r").encode()
            if command in self.refuse:
                return (command + "\r").encode()
            return b""

    def set(self, **kw):
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def commands(self):
        with self._lock:
            return list(self.received)

    def _serve(self):
        buf = b""
        while True:
            ready, _, _ = select.select([self._master, self._stop[0]], [], [])
            if self._stop[0] in ready:
                return
            try:
                data = os.read(self._master, 256)
            except OSError:
                return
            buf += data
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                reply = self.answer(line.decode("ascii", "replace"))
                if reply:
                    os.write(self._master, reply)
