"""The interface between the driver framework and one kind of device.

The framework (`nutapp.drivers.main`) owns the socket to upsd, the
`DriverState`, the poll loop and reconnection; a `Driver` subclass only
opens its device, reads it into `self.dstate`, and carries out commands.

Life cycle, all coroutines run on one asyncio loop:

    d = Cls(upsname, options, dstate)
    await d.open()             # find and open the device, set static data
    loop:
        await d.update()       # read the device once, update self.dstate
        await d.wait(d.poll_interval)   # sleep; may return early on an event
    await d.close()

`update` raises `CommError` when the device stopped answering: the
framework marks the data stale, calls `close`, then `open` again with a
back-off until it succeeds (a replugged USB device, a reconnected cable).
`open` raises `CommError` when the device is not there (yet), or
`DriverError` for a configuration problem that retrying will not fix.
"""

import asyncio

from nutapp.core.errors import NutError

# Driver socket TRACKING results (NUT's STAT_INSTCMD_* / STAT_SET_*).
STAT_HANDLED = 0
STAT_UNKNOWN = 1
STAT_INVALID = 2
STAT_FAILED = 3
STAT_CONVERSION_FAILED = 4


class DriverError(NutError):
    """A configuration or device problem that retrying will not fix."""


class CommError(NutError):
    """The device did not answer; the framework retries."""


class Driver:
    #: NUT's name for this driver (ups.conf ``driver =``).
    name = "generic"
    version = "0.1"
    #: ups.conf options this driver understands besides the common ones.
    options_help = {}

    def __init__(self, upsname, options, dstate):
        self.upsname = upsname
        self.options = options  # ups.conf section: lower-case keys, str values
        self.dstate = dstate
        self.poll_interval = float(options.get("pollinterval", 2))
        self._wakeup = asyncio.Event()

    async def open(self):
        """Find and open the device; publish static variables and commands."""

    async def update(self):
        """Read the device once into `self.dstate` (status_init/set/commit...)."""

    async def instcmd(self, cmd, param=None):
        """Carry out an instant command; return a STAT_* value."""
        return STAT_UNKNOWN

    async def setvar(self, var, value):
        """Set a writable variable on the device; return a STAT_* value."""
        return STAT_UNKNOWN

    async def close(self):
        """Release the device; `open` may be called again afterwards."""

    async def wait(self, timeout):
        """Sleep until the next poll; returns early after `wake()`.

        Drivers with interrupt endpoints or GPIO edges call `wake()` from
        their event handler so that a status change is seen at once.
        """
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._wakeup.clear()

    def wake(self):
        self._wakeup.set()
