"""NUT's usbhid-ups: UPSes that speak the USB HID Power Device class.

`hidparser` reads report descriptors, `mapping` and `subdrivers` say what
the values mean for NUT, `engine` runs usbhid-ups's poll logic against a
transport, `usbdev` is the pyusb transport and `driver` the `Driver`.
"""
