"""Drivers: one process per UPS, speaking NUT's driver socket protocol.

`main` is the process framework (socket, polling, staleness, reconnects,
privilege drop); each driver module only talks to its device through the
`base.Driver` interface. `DRIVERS` maps NUT's driver names (ups.conf
``driver =``) to "module:Class".
"""

DRIVERS = {
    "dummy-ups": "nutapp.drivers.dummy_ups:DummyUps",
    "usbhid-ups": "nutapp.drivers.usbhid.driver:UsbHidUps",
    "nutdrv_qx": "nutapp.drivers.nutdrv_qx:NutdrvQx",
    "blazer_ser": "nutapp.drivers.nutdrv_qx:BlazerSer",
    "generic_gpio": "nutapp.drivers.generic_gpio:GenericGpio",
}


def load_driver_class(name):
    """The Driver class for NUT driver `name`; KeyError if there is none."""
    target = DRIVERS[name]
    module, _, cls = target.partition(":")
    mod = __import__(module, None, None, [cls])
    return getattr(mod, cls)
