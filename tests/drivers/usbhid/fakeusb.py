"""A pyusb backend that plays back real UPSes' descriptors and reports.

`FakeUps` is one UPS loaded from a ``tests/data/usb/*.ups`` file (the
device ids, its strings, its report descriptor as the device sent it and
the Feature reports it answered, copied from a public usbhid-ups debug
log). `FakeBus` implements pyusb's `IBackend`, so ``usb.core.find(
backend=bus)`` enumerates the UPSes plugged into it, and the code under
test goes through the real pyusb `Device` with its control transfers,
string descriptors and interrupt reads.

A UPS can be unplugged (every call then fails as libusb does, with
ENODEV) and plugged back in at another address; its reports can be
changed and Input reports queued on its interrupt endpoint.
"""

import array
import collections
import errno
import os
import threading

import usb.backend
import usb.core

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "data", "usb")

LIBUSB_ERROR_NO_DEVICE = -4
LIBUSB_ERROR_TIMEOUT = -7
LIBUSB_ERROR_PIPE = -9


def data_path(name):
    return os.path.join(DATA, name)


class FakeUps:
    """A UPS as one data file describes it."""

    def __init__(self, name, address=5, bus=1):
        self.name = name
        self.strings = {}
        self.reports = {}  # report id -> bytes, report id first
        self.expect = []  # (path, type, report id, offset, size, value)
        self.sets = []  # SET_REPORT payloads received, in order
        self.asked = {}  # report id -> wLength of the last GET_REPORT
        self.descriptor_requests = []  # wValue of each GET_DESCRIPTOR
        self.interrupts = collections.deque()
        self.cond = threading.Condition()
        self.plugged = False
        self.kernel_driver = True
        self.claimed = set()
        self.bus = bus
        self.address = address
        self._load(data_path(name))

    def _load(self, path):
        lines = open(path).read().split("\n")
        hex_lines = None
        for line in lines:
            if hex_lines is not None:
                if line.strip() == "end":
                    self.descriptor = bytes.fromhex(" ".join(hex_lines))
                    hex_lines = None
                else:
                    hex_lines.append(line)
                continue
            if not line.strip() or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if word == "device":
                words = rest.split()
                self.vendorid, self.productid, self.bcd = [int(w, 16) for w in words[:3]]
                # iManufacturer, iProduct, iSerialNumber (1, 2, 3 unless given)
                self.indices = [int(w) for w in words[3:6]] or [1, 2, 3]
            elif word == "string":
                index, _, text = rest.partition(" ")
                self.strings[int(index)] = text
            elif word == "descriptor":
                hex_lines = []
            elif word == "report":
                data = bytes.fromhex(rest)
                self.reports[data[0]] = data
            elif word == "expect":
                p, t, rid, off, size, value = rest.split()
                self.expect.append((p, t, int(rid, 16), int(off), int(size), float(value)))

    # -- test controls ----------------------------------------------------
    def set_report(self, report):
        """Change what GET_REPORT answers: `report` is hex, report id first."""
        data = bytes.fromhex(report)
        self.reports[data[0]] = data

    def push_interrupt(self, report):
        """Queue an Input report (hex, id first) on the interrupt endpoint."""
        with self.cond:
            self.interrupts.append(bytes.fromhex(report))
            self.cond.notify_all()

    def check(self):
        if not self.plugged:
            raise usb.core.USBError("No such device (it may have been disconnected)",
                                    LIBUSB_ERROR_NO_DEVICE, errno.ENODEV)

    # -- what the device answers on endpoint 0 -----------------------------
    def get_descriptor(self, kind, index, length):
        if kind == 0x03:
            if index == 0:
                return bytes([4, 3, 0x09, 0x04])
            text = self.strings.get(index)
            if text is None:
                raise usb.core.USBError("Pipe error", LIBUSB_ERROR_PIPE, errno.EPIPE)
            body = text.encode("utf-16-le")
            return bytes([len(body) + 2, 3]) + body
        if kind == 0x21:
            return self.hid_descriptor()
        if kind == 0x22:
            return self.descriptor
        raise usb.core.USBError("Pipe error", LIBUSB_ERROR_PIPE, errno.EPIPE)

    def hid_descriptor(self):
        n = len(self.descriptor)
        return bytes([9, 0x21, 0x10, 0x01, 0x21, 0x01, 0x22, n & 0xFF, n >> 8])

    def get_report(self, report_id):
        data = self.reports.get(report_id)
        if data is None:  # real units stall on reports they do not serve
            raise usb.core.USBError("Pipe error", LIBUSB_ERROR_PIPE, errno.EPIPE)
        return data

    def write_report(self, report_id, data):
        self.sets.append(bytes(data))
        self.reports[report_id] = bytes(data)
        return len(data)


class _Desc:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class FakeBus(usb.backend.IBackend):
    """pyusb backend over a set of `FakeUps`, pluggable at run time."""

    def __init__(self, *upses):
        self.upses = []
        for ups in upses:
            self.plug(ups)

    def plug(self, ups, address=None):
        if address is not None:
            ups.address = address
        ups.plugged = True
        ups.kernel_driver = True
        ups.claimed = set()
        if ups not in self.upses:
            self.upses.append(ups)

    def unplug(self, ups):
        with ups.cond:
            ups.plugged = False
            ups.cond.notify_all()
        self.upses.remove(ups)

    # -- enumeration and descriptors ---------------------------------------
    def enumerate_devices(self):
        return iter(list(self.upses))

    def get_device_descriptor(self, dev):
        return _Desc(bLength=18, bDescriptorType=1, bcdUSB=0x0110, bDeviceClass=0,
                     bDeviceSubClass=0, bDeviceProtocol=0, bMaxPacketSize0=8,
                     idVendor=dev.vendorid, idProduct=dev.productid, bcdDevice=dev.bcd,
                     iManufacturer=dev.indices[0], iProduct=dev.indices[1],
                     iSerialNumber=dev.indices[2], bNumConfigurations=1,
                     address=dev.address, bus=dev.bus, port_number=1, port_numbers=(1,),
                     speed=None)

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise IndexError(config)
        return _Desc(bLength=9, bDescriptorType=2, wTotalLength=34, bNumInterfaces=1,
                     bConfigurationValue=1, iConfiguration=0, bmAttributes=0xA0,
                     bMaxPower=50, extra_descriptors=[], extra=[])

    def get_interface_descriptor(self, dev, intf, alt, config):
        if intf != 0 or alt != 0 or config != 0:
            raise IndexError(intf)
        extra = list(dev.hid_descriptor())
        return _Desc(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
                     bNumEndpoints=1, bInterfaceClass=3, bInterfaceSubClass=0,
                     bInterfaceProtocol=0, iInterface=0, extra_descriptors=extra,
                     extra=extra)

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        if ep != 0 or intf != 0 or alt != 0 or config != 0:
            raise IndexError(ep)
        return _Desc(bLength=7, bDescriptorType=5, bEndpointAddress=0x81, bmAttributes=3,
                     wMaxPacketSize=8, bInterval=10, bRefresh=0, bSynchAddress=0,
                     extra_descriptors=[], extra=[])

    # -- handles ------------------------------------------------------------
    def open_device(self, dev):
        dev.check()
        return dev

    def close_device(self, handle):
        pass

    def set_configuration(self, handle, config_value):
        handle.check()

    def get_configuration(self, handle):
        handle.check()
        return 1

    def set_interface_altsetting(self, handle, intf, altsetting):
        handle.check()

    def claim_interface(self, handle, intf):
        handle.check()
        if handle.kernel_driver:
            raise usb.core.USBError("Resource busy", -6, errno.EBUSY)
        handle.claimed.add(intf)

    def release_interface(self, handle, intf):
        handle.claimed.discard(intf)

    def is_kernel_driver_active(self, handle, intf):
        handle.check()
        return handle.kernel_driver

    def detach_kernel_driver(self, handle, intf):
        handle.check()
        handle.kernel_driver = False

    def attach_kernel_driver(self, handle, intf):
        handle.kernel_driver = True

    # -- transfers ------------------------------------------------------------
    def ctrl_transfer(self, handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        handle.check()
        if bmRequestType & 0x80:
            if bRequest == 0x06:
                handle.descriptor_requests.append(wValue)
                answer = handle.get_descriptor(wValue >> 8, wValue & 0xFF, len(data))
            elif bRequest == 0x01 and bmRequestType == 0xA1 and wValue >> 8 == 3:
                handle.asked[wValue & 0xFF] = len(data)
                answer = handle.get_report(wValue & 0xFF)
            else:
                raise usb.core.USBError("Pipe error", LIBUSB_ERROR_PIPE, errno.EPIPE)
            n = min(len(answer), len(data))
            data[:n] = array.array("B", answer[:n])
            return n
        if bRequest == 0x09 and bmRequestType == 0x21 and wValue >> 8 == 3:
            return handle.write_report(wValue & 0xFF, data.tobytes())
        raise usb.core.USBError("Pipe error", LIBUSB_ERROR_PIPE, errno.EPIPE)

    def intr_read(self, handle, ep, intf, buff, timeout):
        with handle.cond:
            if not handle.interrupts and handle.plugged:
                handle.cond.wait(timeout / 1000.0)
            handle.check()
            if not handle.interrupts:
                raise usb.core.USBTimeoutError("Operation timed out", LIBUSB_ERROR_TIMEOUT,
                                               errno.ETIMEDOUT)
            report = handle.interrupts.popleft()
        n = min(len(report), len(buff))
        buff[:n] = array.array("B", report[:n])
        return n
