"""USB access for usbhid-ups and nut-scanner, through pyusb.

`scan` lists the HID devices on the buses with their identity strings;
`Matcher` applies NUT's device-matching options (vendorid, productid,
vendor, product, serial, bus, device, busport: extended regular
expressions, case-insensitive, matching the whole value with surrounding
blanks trimmed; ids as four lower-case hex digits, bus, device and port
as three decimal digits). `open_hid` claims the HID interface (detaching a kernel
driver that holds it), reads the report descriptor and returns a
`UsbHidTransport`, the engine's window on the device.

A pyusb backend may be passed everywhere: the tests pass a fake one.
Without one, `scan` uses libusb 1.0 found by `find_libusb`: pyusb's own
search (ctypes.util.find_library) needs `ldconfig -p` with a library cache,
or a compiler, and a Buildroot image has neither.
"""

import ctypes.util
import errno
import glob
import os
import re
import time

import usb.core
import usb.util

from .engine import DeviceGone

TIMEOUT_MS = 5000
MAX_REPORT = 255  # bytes asked for with the maxreport tweak

# libusb errors that mean the device is gone or taken: reconnect.
_GONE_ERRNOS = (errno.ENODEV, errno.ENXIO, errno.ENOENT, errno.EACCES, errno.EBUSY,
                errno.EPERM, errno.ESHUTDOWN)
_GONE_LIBUSB = (-3, -4, -5, -6)  # ACCESS, NO_DEVICE, NOT_FOUND, BUSY


class DeviceInfo:
    """What identifies a USB device, as NUT's matchers see it."""

    def __init__(self, dev, vendorid, productid, bcd, manufacturer, product, serial,
                 bus, address, port=None):
        self.dev = dev  # the pyusb Device
        self.vendorid = vendorid
        self.productid = productid
        self.bcd = bcd
        self.manufacturer = manufacturer
        self.product = product
        self.serial = serial
        self.bus = "%03d" % bus if bus is not None else None
        self.device = "%03d" % address if address else None
        self.busport = "%03d" % port if port else None
        self.power_device = False

    def identity(self):
        """What must stay the same when the device comes back (NUT's exact match)."""
        return (self.vendorid, self.productid, self.manufacturer, self.product, self.serial)

    def __repr__(self):
        return "<USB %04x:%04x %s/%s serial=%r>" % (
            self.vendorid, self.productid, self.bus, self.device, self.serial)


def gone(exc):
    """True if a pyusb error means the device went away (or was taken)."""
    if isinstance(exc, usb.core.USBTimeoutError):
        return False
    code = getattr(exc, "backend_error_code", None)
    return getattr(exc, "errno", None) in _GONE_ERRNOS or code in _GONE_LIBUSB


# Where a system keeps libusb when nothing can be asked (Debian's multiarch
# folders, then the plain ones a Buildroot root has).
LIBRARY_DIRS = ("/usr/lib/*-linux-gnu", "/lib/*-linux-gnu", "/usr/lib64", "/lib64",
                "/usr/lib", "/lib")


def find_libusb(name, dirs=LIBRARY_DIRS, find_library=ctypes.util.find_library):
    """pyusb's `find_library` hook: the system's answer for `name` (such as
    "usb-1.0"), else the first lib<name>.so* file in `dirs`."""
    found = find_library(name)
    if found:
        return found
    for pattern in dirs:
        for folder in sorted(glob.glob(pattern)):
            for path in sorted(glob.glob(os.path.join(folder, "lib%s.so*" % name))):
                if os.path.isfile(path):
                    return path
    return None


def default_backend():
    """libusb 1.0 through `find_libusb`, or None to let pyusb look itself."""
    import usb.backend.libusb1

    return usb.backend.libusb1.get_backend(find_library=find_libusb)


def scan(backend=None):
    """Every USB device with its identity strings (unreadable ones left None)."""
    found = []
    if backend is None:
        backend = default_backend()
    for dev in usb.core.find(find_all=True, backend=backend):
        found.append(describe(dev))
    return found


def describe(dev):
    return DeviceInfo(dev, dev.idVendor, dev.idProduct, dev.bcdDevice,
                      _string(dev, dev.iManufacturer), _string(dev, dev.iProduct),
                      _string(dev, dev.iSerialNumber), dev.bus, dev.address,
                      getattr(dev, "port_number", None))


def _string(dev, index):
    if not index:
        return None
    try:
        return usb.util.get_string(dev, index)
    except (usb.core.USBError, ValueError, NotImplementedError):
        return None


class Matcher:
    """NUT's regex matcher over the ups.conf options."""

    FIELDS = ("vendorid", "productid", "vendor", "product", "serial", "bus", "device",
              "busport")

    def __init__(self, options):
        self.patterns = {}
        for name in self.FIELDS:
            text = options.get(name)
            if text is None:
                continue
            try:
                self.patterns[name] = re.compile(text, re.I)
            except re.error as e:
                raise ValueError("invalid regular expression for %s: %s (%s)" % (name, text, e))

    def matches(self, info):
        values = {"vendorid": "%04x" % info.vendorid, "productid": "%04x" % info.productid,
                  "vendor": info.manufacturer, "product": info.product,
                  "serial": info.serial, "bus": info.bus, "device": info.device,
                  "busport": info.busport}
        for name, pattern in self.patterns.items():
            value = (values[name] or "").strip(" \t\n")
            if pattern.fullmatch(value) is None:
                return False
        return True


class UsbHidTransport:
    """GET_REPORT / SET_REPORT / strings / interrupt IN on one HID interface."""

    def __init__(self, info, interface, ep_in, packet_size):
        self.info = info
        self.dev = info.dev
        self.interface = interface
        self.ep_in = ep_in
        self.packet_size = packet_size
        self.numbered = True
        self.detached = False  # we took the interface from a kernel driver
        self.max_report = False  # ask for a whole buffer: firmware that overruns

    def get_feature(self, report_id, length):
        size = length + 1 if self.numbered else length
        if self.max_report:
            size = MAX_REPORT
        try:
            data = self.dev.ctrl_transfer(0xA1, 0x01, 0x0300 | report_id, self.interface,
                                          max(size, 1), TIMEOUT_MS)
        except usb.core.USBError as e:
            if gone(e):
                raise DeviceGone(str(e))
            return None  # stalled or timed out: this report is skipped
        return bytes(data)

    def set_feature(self, report_id, data):
        try:
            n = self.dev.ctrl_transfer(0x21, 0x09, 0x0300 | report_id, self.interface,
                                       bytes(data), TIMEOUT_MS)
        except usb.core.USBError as e:
            if gone(e):
                raise DeviceGone(str(e))
            return False
        return n > 0

    def get_string(self, index):
        try:
            return usb.util.get_string(self.dev, index) or ""
        except usb.core.USBError as e:
            if gone(e):
                raise DeviceGone(str(e))
            return ""
        except ValueError:
            return ""

    def read_interrupt(self, size, timeout_ms):
        """One Input report, or None when none came within the timeout."""
        if self.ep_in is None:
            return None
        try:
            return bytes(self.dev.read(self.ep_in, size, timeout_ms))
        except usb.core.USBTimeoutError:
            return None
        except usb.core.USBError as e:
            if gone(e) or getattr(e, "errno", None) == errno.EIO:
                raise DeviceGone(str(e))
            return None

    def pause(self, seconds):
        time.sleep(seconds)

    def close(self, give_back=False):
        """Release the interface; `give_back` re-attaches the kernel driver we
        detached (for a device that turned out not to be a UPS)."""
        try:
            usb.util.release_interface(self.dev, self.interface)
        except (usb.core.USBError, ValueError):
            pass
        if give_back and self.detached:
            try:
                self.dev.attach_kernel_driver(self.interface)
            except (usb.core.USBError, NotImplementedError):
                pass
        usb.util.dispose_resources(self.dev)


def open_hid(info, options):
    """Claim `info`'s HID interface; return (transport, report descriptor bytes).

    Raises `usb.core.USBError` when the device cannot be opened or read.
    """
    dev = info.dev
    interface = _hex_option(options, "usb_hid_rep_index", 0)
    # Eaton units with bcdDevice 2.02 keep their Power Device descriptor at
    # index 1 and report its length right only in the HID descriptor itself.
    eaton_202 = info.vendorid == 0x0463 and info.bcd == 0x0202
    desc_index = _hex_option(options, "usb_hid_desc_index", 1 if eaton_202 else 0)
    cfg = dev.get_active_configuration() if _has_config(dev) else None
    if cfg is None:
        dev.set_configuration()
        cfg = dev.get_active_configuration()
    intf = usb.util.find_descriptor(cfg, bInterfaceNumber=interface)
    if intf is None:
        raise usb.core.USBError("no interface %d" % interface, errno=errno.ENOENT)
    if intf.bInterfaceClass != 3:
        raise usb.core.USBError("interface %d is not HID" % interface, errno=errno.ENODEV)
    detached = False
    try:
        if dev.is_kernel_driver_active(interface):
            dev.detach_kernel_driver(interface)
            detached = True
    except NotImplementedError:
        pass
    usb.util.claim_interface(dev, interface)
    if "usb_set_altinterface" in options:
        dev.set_interface_altsetting(interface, int(options["usb_set_altinterface"] or 0))

    length = _report_descriptor_length(dev, intf, interface, desc_index, eaton_202)
    rdesc = bytes(dev.ctrl_transfer(0x81, 0x06, 0x2200 | desc_index, interface, length,
                                    TIMEOUT_MS))
    ep_in = _hex_option(options, "usb_hid_ep_in", None)
    packet = 8
    for ep in intf:
        if usb.util.endpoint_direction(ep.bEndpointAddress) == usb.util.ENDPOINT_IN and \
                usb.util.endpoint_type(ep.bmAttributes) == usb.util.ENDPOINT_TYPE_INTR:
            if ep_in is None or ep.bEndpointAddress & 0x7F == ep_in & 0x7F:
                ep_in = ep.bEndpointAddress
                packet = ep.wMaxPacketSize
                break
    if ep_in is not None and not ep_in & 0x80:
        ep_in |= 0x80
    transport = UsbHidTransport(info, interface, ep_in, packet)
    transport.detached = detached
    return transport, rdesc


def _has_config(dev):
    try:
        dev.get_active_configuration()
        return True
    except usb.core.USBError:
        return False


def _report_descriptor_length(dev, intf, interface, desc_index, ask_first=False):
    """wDescriptorLength of the report descriptor.

    Taken from the HID descriptor that follows the interface descriptor (as
    lsusb shows it: the reliable one on most units), else asked for with
    GET_DESCRIPTOR.
    """
    if not ask_first:
        extra = bytes(intf.extra_descriptors or b"")
        i = 0
        while i + 9 <= len(extra) and extra[i] >= 2:
            if extra[i + 1] == 0x21 and extra[i] >= 9:
                return extra[i + 7] | (extra[i + 8] << 8)
            i += extra[i]
    hid = dev.ctrl_transfer(0x81, 0x06, 0x2100 | desc_index, interface, 9, TIMEOUT_MS)
    if len(hid) < 9:
        raise usb.core.USBError("short HID descriptor", errno=errno.EIO)
    return hid[7] | (hid[8] << 8)


def _hex_option(options, name, default):
    text = options.get(name)
    if text is None:
        return default
    return int(text, 16)
