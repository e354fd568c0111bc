"""`nutapp nut-scanner`: find USB UPSes and print their ups.conf sections.

Like NUT's ``nut-scanner -U``: every USB device whose ids a usbhid-ups
subdriver knows becomes a ``[nutdev-usbN]`` section naming the driver,
``port = "auto"`` and the matching options (vendorid, productid, product,
serial, vendor, bus), with ``device`` and ``busport`` commented out since
they change when the device is plugged elsewhere. ``-P`` prints NUT's
one-line parsable form instead. Only USB is scanned here.
"""

import argparse
import sys

#: pyusb backend to scan; None is pyusb's default. Tests put a fake here.
BACKEND = None


def main(argv=None, prog="nut-scanner"):
    p = argparse.ArgumentParser(prog=prog, description="Scan for UPSes (USB only).")
    p.add_argument("-U", "--usb_scan", action="store_true", help="scan USB devices")
    p.add_argument("-P", "--parsable", action="store_true",
                   help="one line per device instead of ups.conf sections")
    p.add_argument("-q", "--quiet", action="store_true", help="display only scan results")
    for flag in ("-S", "-M", "-O", "-A", "-m", "-N", "-I", "-E", "-n"):
        p.add_argument(flag, action="store_true", help="not supported here (USB only)")
    args = p.parse_args(argv)
    others = [f for f in ("S", "M", "O", "A", "m", "N", "I", "E", "n") if getattr(args, f)]
    if others and not args.usb_scan:
        sys.stderr.write("%s: only USB scanning (-U) is supported\n" % prog)
        return 1

    try:
        devices = scan_usb(BACKEND)
    except Exception as e:  # no libusb, no permission to list the bus...
        sys.stderr.write("%s: cannot scan USB: %s\n" % (prog, e))
        return 1
    if not args.quiet and not args.parsable:
        sys.stdout.write("Scanning USB bus.\n")
    out = []
    for n, dev in enumerate(devices, 1):
        if args.parsable:
            out.append(parsable_line(dev))
        else:
            out.append(ups_conf_section(dev, n))
    sys.stdout.write("".join(out))
    return 0


class Found:
    """One UPS the scan found: driver name and its options, in NUT's order."""

    def __init__(self, driver, options):
        self.driver = driver
        self.options = options  # [(name, value, commented)]


def scan_usb(backend=None):
    """The USB devices a usbhid-ups subdriver claims by their ids."""
    from nutapp.drivers.usbhid import subdrivers, usbdev

    found = []
    for info in usbdev.scan(backend):
        if not any(sub.claim(info, {}) for sub in subdrivers.SUBDRIVERS):
            continue
        opts = [("vendorid", "%04X" % info.vendorid, False),
                ("productid", "%04X" % info.productid, False)]
        if info.product:
            opts.append(("product", info.product.rstrip(" "), False))
        if info.serial:
            opts.append(("serial", info.serial.rstrip(" "), False))
        if info.manufacturer:
            opts.append(("vendor", info.manufacturer.rstrip(" "), False))
        if info.bus:
            opts.append(("bus", info.bus, False))
        if info.device:
            opts.append(("device", info.device, True))
        if info.busport:
            opts.append(("busport", info.busport, True))
        found.append(Found("usbhid-ups", opts))
    return found


def ups_conf_section(dev, n):
    lines = ['[nutdev-usb%d]' % n, '\tdriver = "%s"' % dev.driver, '\tport = "auto"']
    for name, value, commented in dev.options:
        lines.append('\t%s%s = "%s"' % ("# " if commented else "", name, value))
    return "\n".join(lines) + "\n"


def parsable_line(dev):
    parts = ['USB:driver="%s"' % dev.driver, 'port="auto"']
    for name, value, commented in dev.options:
        if not commented:
            parts.append('%s="%s"' % (name, value))
    return ",".join(parts) + "\n"
