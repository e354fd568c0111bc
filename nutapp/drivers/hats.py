"""UPS HATs for the Raspberry Pi: presets for generic_gpio, and the
MAX1704x fuel gauge arithmetic. No I/O; runs under MicroPython.

A preset is what `hat = <name>` in ups.conf fills in: the `rules` for the
HAT's power-loss line, its I2C fuel gauge, and the thresholds its maker
uses. Every value can still be given explicitly in ups.conf, which wins.

Facts, from the makers' own scripts:

- Geekworm X728 (v1.x and v2.x): GPIO6 is the power-loss detector, high
  when the adapter or mains is gone and low when power is good. The fuel
  gauge sits at I2C address 0x36 on bus 1; the scripts call the battery
  low under 20 % and shut down under 3.00 V. (GPIO13 or GPIO26 is the
  HAT's own shutdown input: this driver never drives it.)
- UPS-Lite V1.2: MAX17040G fuel gauge at 0x36 on bus 1; GPIO4 is high
  while the power adapter is plugged in, low when it is unplugged; the
  maker's script calls the battery low under 5 %. (V1.3 has a CW2015
  gauge, which this module does not read.)

MAX17040/MAX17043/MAX17048 (one cell): register 0x02 VCELL holds the cell
voltage in units of 1.25 mV / 16 (78.125 uV) across its 16 bits; register
0x04 SOC holds the state of charge in 1/256 %. Both are big-endian words.
"""

REG_VCELL = 0x02
REG_SOC = 0x04
REG_VERSION = 0x08
DEFAULT_I2C_ADDRESS = 0x36

PRESETS = {
    "x728": {
        "rules": "OL=^6;OB=6;DISCHRG=6;",
        "mfr": "Geekworm",
        "model": "X728",
        "fuel_gauge": "max1704x",
        "i2c_bus": "1",
        "i2c_address": "0x36",
        "battery.charge.low": "20",
        "battery.voltage.low": "3.00",
    },
    "ups-lite": {
        "rules": "OL=4;OB=^4;DISCHRG=^4;",
        "mfr": "UPS-Lite",
        "model": "UPS-Lite V1.2",
        "fuel_gauge": "max1704x",
        "i2c_bus": "1",
        "i2c_address": "0x36",
        "battery.charge.low": "5",
    },
}


def preset(name):
    """The preset for HAT `name` (case and - / _ do not matter); KeyError."""
    key = name.strip().lower().replace("_", "-")
    if key == "upslite":
        key = "ups-lite"
    return PRESETS[key]


def word(data):
    """Two bytes read from a register (MSB first) -> int."""
    if len(data) != 2:
        raise ValueError("expected 2 bytes, got %d" % len(data))
    return (data[0] << 8) | data[1]


def vcell_volts(raw):
    """VCELL register value -> cell voltage in volts."""
    return raw * 1.25 / 16 / 1000.0


def soc_percent(raw):
    """SOC register value -> state of charge in percent (may exceed 100
    right after a full charge; callers clamp for battery.charge)."""
    return raw / 256.0


def battery_values(vcell_raw, soc_raw):
    """(battery.voltage, battery.charge) as NUT prints them."""
    charge = min(100.0, soc_percent(soc_raw))
    return "%.2f" % vcell_volts(vcell_raw), "%.0f" % charge


def is_low(charge, voltage, charge_low=None, voltage_low=None):
    """Whether the battery counts as low: charge below battery.charge.low
    or voltage below battery.voltage.low, whichever are known."""
    if charge_low is not None and charge is not None and charge < charge_low:
        return True
    if voltage_low is not None and voltage is not None and voltage < voltage_low:
        return True
    return False
