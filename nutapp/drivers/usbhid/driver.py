"""usbhid-ups: UPSes of the USB HID Power Device class, through pyusb.

The driver finds the UPS by NUT's matching options, claims its HID
interface (detaching the kernel's usbhid driver if it holds it), reads the
report descriptor and picks a subdriver (APC, CyberPower, Eaton/MGE, Tripp
Lite by USB ids; the generic Power Device table for a device ups.conf names
by ``vendorid`` or ``subdriver``). Other USB devices are never claimed, so
the kernel keeps its keyboards and mice. It then polls Feature reports
every ``pollinterval`` and listens on the interrupt IN endpoint in a
thread: an Input report (the UPS going on battery, say) wakes the poll
loop at once instead of at the next interval.

When the device disappears the next poll raises `CommError`; the
framework closes the driver and calls `open` again with a back-off.
`open` then accepts only the same UPS (same ids and vendor, product and
serial strings), wherever it re-enumerated, and the data resumes.

ups.conf options (as NUT's usbhid-ups(8) and nut_usb_addvars describe them):

``port``
    Required, ignored (``auto``).
``vendorid``, ``productid``, ``vendor``, ``product``, ``serial``, ``bus``, ``device``
    Extended regular expressions, case-insensitive, that must match the
    whole value: ids as 4 hex digits (``051d``), bus and device as 3
    decimal digits (``002``), strings with surrounding blanks trimmed.
``busport``
    Regular expression for the port number on the hub (3 digits), where the
    OS tells it; steadier than ``device`` across re-plugging.
``allow_duplicates``
    Skip a matching device that another process holds, try the next.
``subdriver``
    Force a subdriver by name or regular expression (``apc``, ``cyberpower``,
    ``mge``, ``tripplite``, ``generic``).
``usb_set_altinterface``, ``usb_hid_rep_index``, ``usb_hid_desc_index``, ``usb_hid_ep_in``
    Interface alternate setting; interface, descriptor index and interrupt
    endpoint numbers (hex), for devices where they are not 0 / the first.
``pollfreq``
    Seconds between full updates (default 30, 12 for CyberPower); every
    ``pollinterval`` only the status values are read.
``pollonly``
    Do not use the interrupt endpoint (set automatically for APC 051d:0003
    and 051d:0004, whose interrupt pipe speaks another protocol).
``interruptonly``, ``interruptsize``
    Only use Input reports from the interrupt endpoint; read at most that
    many bytes from it (some Powercom units need 8).
``lowbatt``, ``ondelay``, ``offdelay``
    battery.charge.low, ups.delay.start and ups.delay.shutdown to set at
    start-up, where the UPS has them (delays default to 30/20 s, or
    120/60 s on CyberPower).
``onlinedischarge_onbattery`` (``onlinedischarge_battery`` in the manual,
``onlinedischarge`` in old configurations)
    Report OL+DISCHRG as OB (CyberPower UT series).
``onlinedischarge_calibration``
    Report OL+DISCHRG as CAL (some APC units during calibration).
``onlinedischarge_log_throttle_sec``, ``onlinedischarge_log_throttle_hovercharge``
    How often to warn about an unexplained OL+DISCHRG (seconds; negative:
    once), and the charge at or above which changes do not warn.
``lbrb_log_delay_sec``, ``lbrb_log_delay_without_calibrating``
    Hold LB and RB back for this many seconds while online (and calibrating,
    unless the second flag is set). APC BX...MI, BVK...M2 and BK...M2-CH
    units flap them: for those the delay defaults to 3 s.
``disable_fix_report_desc``
    Do not repair known descriptor mistakes (CyberPower voltage ranges...).
``waitbeforereconnect``
    Seconds to wait before looking for the UPS again after it was lost.
``maxreport``
    Ask for whole 255-byte buffers when reading reports, for firmware that
    sends more than its descriptor says (on by itself for the APC Back-UPS
    ES 525 and CS models).
``interrupt_pipe_no_events_tolerance``
    After this many polls in a row without any interrupt report, take the
    UPS for frozen and reconnect (default -1: never). Some APC BX units
    need it.
``explore``
    Take any HID device that ``vendorid`` names (required with it), read
    it with the generic table, and log every field of its descriptor with
    its value: what a report asking for support of a new UPS needs.
"""

import asyncio
import collections
import errno
import logging
import threading
import time

import usb.core

from nutapp.drivers.base import Driver, CommError, DriverError, STAT_FAILED

from . import hidparser, subdrivers, usbdev
from .engine import HidUps, DeviceGone

log = logging.getLogger("nutapp.drivers.usbhid")

UPS_COLLECTION = 0x00840004


class UsbHidUps(Driver):
    name = "usbhid-ups"
    version = "0.1"
    options_help = {
        "vendorid": "Regular expression to match UPS Manufacturer numerical ID (4 hex digits)",
        "productid": "Regular expression to match UPS Product numerical ID (4 hex digits)",
        "vendor": "Regular expression to match UPS Manufacturer string",
        "product": "Regular expression to match UPS Product string",
        "serial": "Regular expression to match UPS Serial number",
        "bus": "Regular expression to match USB bus name",
        "device": "Regular expression to match USB device name",
        "busport": "Regular expression to match USB bus port name",
        "allow_duplicates": "Take the first free match if several UPSes fit",
        "subdriver": "Explicit USB HID subdriver selection",
        "usb_set_altinterface": "Force a set_interface_altsetting call (value)",
        "usb_config_index": "USB configuration index (hex, ignored)",
        "usb_hid_rep_index": "HID interface number (hex)",
        "usb_hid_desc_index": "HID report descriptor index (hex)",
        "usb_hid_ep_in": "Interrupt IN endpoint number (hex)",
        "usb_hid_ep_out": "Interrupt OUT endpoint number (hex, unused)",
        "pollfreq": "Set polling frequency for full updates, in seconds",
        "pollonly": "Don't use interrupt pipe, only use polling",
        "interruptonly": "Don't use polling, only use interrupt pipe",
        "interruptsize": "Number of bytes to read from interrupt pipe",
        "lowbatt": "Set low battery level, in %",
        "ondelay": "Set startup delay, in seconds",
        "offdelay": "Set shutdown delay, in seconds",
        "onlinedischarge": "Deprecated name of onlinedischarge_onbattery",
        "onlinedischarge_onbattery": "Treat discharging while online as on battery",
        "onlinedischarge_battery": "Same as onlinedischarge_onbattery",
        "onlinedischarge_calibration": "Treat discharging while online as calibration",
        "onlinedischarge_log_throttle_sec": "Seconds between OL+DISCHRG warnings",
        "onlinedischarge_log_throttle_hovercharge": "Charge (%) above which not to warn",
        "lbrb_log_delay_sec": "Delay LB/RB status while online and calibrating",
        "lbrb_log_delay_without_calibrating": "Apply lbrb_log_delay_sec always",
        "disable_fix_report_desc": "Do not fix known report descriptor mistakes",
        "waitbeforereconnect": "Seconds to wait before trying to reconnect",
        "maxreport": "Read reports into a whole buffer (buggy APC Back-UPS firmware)",
        "explore": "Diagnostic matching of unsupported UPS (needs vendorid)",
        "interrupt_pipe_no_events_tolerance": "Quiet polls before reconnecting",
    }

    #: pyusb backend; None means pyusb's default (libusb). Tests set a fake.
    backend = None

    def __init__(self, upsname, options, dstate):
        Driver.__init__(self, upsname, options, dstate)
        self.engine = None
        self.transport = None
        self.info = None
        self._identity = None  # set once the UPS was found: only it is accepted back
        self._lost = False
        self._events = collections.deque()
        self._reader = None
        self._stop = threading.Event()
        self._gone = False
        self._quiet_polls = 0
        self._lock = asyncio.Lock()
        self._loop = None

    # -- life cycle -------------------------------------------------------
    async def open(self):
        self._loop = asyncio.get_running_loop()
        if self._lost and "waitbeforereconnect" in self.options:
            await asyncio.sleep(float(self.options["waitbeforereconnect"] or 0))
        found = await self._loop.run_in_executor(None, self._find)
        self.info, self.transport, desc, sub = found
        self.engine = HidUps(desc, sub, self.transport, self.dstate, self._engine_options(),
                             self.info)
        self._publish_identity(sub)
        try:
            await self._loop.run_in_executor(None, self.engine.start, time.monotonic())
        except DeviceGone as e:
            await self.close()
            raise CommError("USB device lost while reading it: %s" % e)
        self._flush_log()
        if "explore" in self.options and self._identity is None:
            lines = await self._loop.run_in_executor(None, self.engine.dump_tree,
                                                     time.monotonic())
            for line in lines:
                log.info("%s: %s", self.upsname, line)
        if self._identity is None:
            log.info("%s: using subdriver %s for %r", self.upsname, sub.name, self.info)
        elif self._lost:
            log.info("%s: device reconnected at %s/%s", self.upsname, self.info.bus,
                     self.info.device)
        self._identity = self.info.identity()
        self._lost = False
        self._gone = False
        self._quiet_polls = 0
        self._events.clear()
        if self.engine.use_interrupt and self.transport.ep_in is not None:
            self._stop.clear()
            self._reader = threading.Thread(target=self._read_interrupts,
                                            name="usbhid-interrupt", daemon=True)
            self._reader.start()

    async def update(self):
        if self.engine is None:
            raise CommError("not connected")
        async with self._lock:
            try:
                await self._loop.run_in_executor(None, self._poll)
            except DeviceGone as e:
                self._lost = True
                raise CommError("USB device lost: %s" % e)
        self._flush_log()

    async def instcmd(self, cmd, param=None):
        if self.engine is None:
            return STAT_FAILED
        async with self._lock:
            try:
                return await self._loop.run_in_executor(None, self.engine.instcmd, cmd,
                                                        param)
            except DeviceGone:
                self._lost = True
                return STAT_FAILED
            finally:
                self._flush_log()

    async def setvar(self, var, value):
        if self.engine is None:
            return STAT_FAILED
        async with self._lock:
            try:
                return await self._loop.run_in_executor(None, self.engine.setvar, var, value)
            except DeviceGone:
                self._lost = True
                return STAT_FAILED

    async def close(self):
        self._stop.set()
        reader, self._reader = self._reader, None
        if reader is not None and self._loop is not None:
            await self._loop.run_in_executor(None, reader.join, 2.0)
        transport, self.transport = self.transport, None
        if transport is not None and self._loop is not None:
            try:
                await self._loop.run_in_executor(None, transport.close)
            except usb.core.USBError as e:  # closing a device that is gone
                log.debug("%s: close: %s", self.upsname, e)
        self.engine = None

    # -- device search ----------------------------------------------------
    def _find(self):
        if "explore" in self.options and "vendorid" not in self.options:
            raise DriverError('must specify "vendorid" when using "explore"')
        try:
            matcher = usbdev.Matcher(self.options)
        except ValueError as e:
            raise DriverError(str(e))
        problems = []
        try:
            devices = usbdev.scan(self.backend)
        except usb.core.NoBackendError as e:
            raise DriverError("no USB backend (libusb) available: %s" % e)
        except usb.core.USBError as e:
            raise CommError("cannot list USB devices: %s" % e)
        for info in devices:
            if self._identity is not None and info.identity() != self._identity:
                continue
            if not matcher.matches(info) or not self._candidate(info):
                continue
            opened = self._try_open(info, problems)
            if opened is not None:
                return opened
        if problems:
            raise CommError("no usable HID UPS found: " + "; ".join(problems))
        raise CommError("no matching HID UPS found")

    def _candidate(self, info):
        """Worth opening: a subdriver knows its ids, or ups.conf points at it.

        Opening means taking the interface from the kernel, so a keyboard
        on the same Pi is left alone unless ``vendorid`` or ``subdriver``
        names it (the generic Power Device table may then take it).
        """
        if "subdriver" in self.options or "vendorid" in self.options:
            return True
        return any(sub.claim(info, self.options) for sub in subdrivers.SUBDRIVERS)

    def _try_open(self, info, problems):
        try:
            transport, rdesc = usbdev.open_hid(info, self.options)
        except usb.core.USBError as e:
            if getattr(e, "errno", None) == errno.EBUSY and "allow_duplicates" in self.options:
                return None
            problems.append("%04x:%04x: %s" % (info.vendorid, info.productid, e))
            return None
        try:
            desc = hidparser.parse(rdesc)
        except hidparser.HidError as e:
            transport.close(give_back=True)
            problems.append("%04x:%04x: bad report descriptor: %s"
                            % (info.vendorid, info.productid, e))
            return None
        info.power_device = bool(desc.fields) and desc.fields[0].path[:1] == (UPS_COLLECTION,)
        if "explore" in self.options:
            sub = subdrivers.GENERIC
        else:
            sub = subdrivers.select(info, self.options)
        if sub is None:
            transport.close(give_back=True)
            if "subdriver" in self.options:
                raise DriverError("no subdriver matches %r" % self.options["subdriver"])
            return None
        if "disable_fix_report_desc" not in self.options:
            sub.fix_report_desc(info, desc)
        transport.numbered = desc.numbered
        transport.max_report = "maxreport" in self.options or sub.tweak(info) == "maxreport"
        return info, transport, desc, sub

    def _engine_options(self):
        opts = dict(self.options)
        opts.setdefault("pollinterval", str(self.poll_interval))
        if "lbrb_log_delay_sec" not in opts and _flaps_lb_rb(self.info):
            opts["lbrb_log_delay_sec"] = "3"
            log.info("%s: defaulting lbrb_log_delay_sec=3 for %s", self.upsname,
                     self.info.product)
        return opts

    def _publish_identity(self, sub):
        d = self.dstate
        info = self.info
        for var, value in (("ups.mfr", sub.format_mfr(info)),
                           ("ups.model", sub.format_model(info, d)),
                           ("ups.serial", info.serial)):
            if value is not None:
                d.setinfo(var, value)
                d.setinfo("device." + var[4:], value)
            else:
                d.delinfo(var)
        d.setinfo("device.type", "ups")
        d.setinfo("ups.vendorid", "%04x" % info.vendorid)
        d.setinfo("ups.productid", "%04x" % info.productid)

    # -- polling and events ----------------------------------------------
    def _poll(self):
        now = time.monotonic()
        events = 0
        while self._events:
            self.engine.interrupt(self._events.popleft(), now)
            events += 1
        if self._gone:
            raise DeviceGone("interrupt endpoint failed")
        if self._reader is not None:
            self._quiet_polls = 0 if events else self._quiet_polls + 1
            tolerance = int(self.options.get("interrupt_pipe_no_events_tolerance") or -1)
            if 0 <= tolerance < self._quiet_polls:
                raise DeviceGone("no interrupt report for %d polls" % self._quiet_polls)
        self.engine.update(now)

    def _read_interrupts(self):
        size = int(self.options.get("interruptsize") or 0) or max(self.transport.packet_size, 8)
        transport = self.transport
        while not self._stop.is_set():
            try:
                report = transport.read_interrupt(size, 500)
            except DeviceGone:
                self._gone = True
                self._loop.call_soon_threadsafe(self.wake)
                return
            if report:
                self._events.append(report)
                self._loop.call_soon_threadsafe(self.wake)

    def _flush_log(self):
        if self.engine is not None:
            for line in self.engine.take_log():
                log.warning("%s: %s", self.upsname, line)


def _flaps_lb_rb(info):
    """APC BX...MI, BVK...M2 and BK...M2-CH units, which report LB and RB for
    a few seconds at a time (usbhid-ups delays those by 3 s on them)."""
    if info.manufacturer not in ("APC", "American Power Conversion"):
        return False
    p = info.product or ""

    def model(prefix):
        return p.startswith(prefix) or (" " + prefix) in p

    if len(p) > 6 and model("BX") and p.endswith("MI"):
        return True
    if len(p) > 7 and model("BVK") and p.endswith("M2"):
        return True
    return len(p) > 9 and model("BK") and p[-5:-3] == "M2" and p[-3] in "-_" \
        and p.endswith("CH")
