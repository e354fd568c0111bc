"""Per-vendor knowledge: which device is whose, and where its data lives.

Each `Subdriver` names the USB ids it claims, the vendor usages it adds to
the HID Power Device names, its mapping table (HID path -> NUT variable,
status bit or command) and the fixes its firmware's descriptors need. The
facts (usages, paths, ids, quirks) are those of NUT's apc-hid, cps-hid,
mge-hid and tripplite-hid subdrivers; `GENERIC` maps only the standard
Power Device paths, for a UPS no vendor subdriver claims (tried only when
ups.conf names the device by ``vendorid`` or ``subdriver``).

A table lists alternatives for one variable in order of preference: the
first row whose path the device has, and that yields a value, wins.

Conversions receive a context (the engine) with ``get_string(index)``,
``getinfo(var)``, ``status`` (the `StatusBits`) and ``productid``.
"""

from .hidparser import UsageNames, STANDARD_USAGES
from .mapping import (Info, Table, Conv, rw, cmd, boolean, STATIC, SEMI_STATIC, ABSENT,
                      QUICK, ENUM, ONLINE, DISCHARGING, CHARGING, LOWBATT, OVERLOAD,
                      REPLACEBATT, TRIM, BOOST, BYPASS_MANUAL, OFF, NOBATTERY, FANFAIL,
                      SHUTDOWNIMM, OVERHEAT, AWAITINGPOWER, COMMFAULT, TIMELIMITEXPIRED,
                      BATTVOLTLO, BATTVOLTHI, CHARGERFAIL, FULLYCHARGED, DEPLETED, VRANGE,
                      FRANGE, TEST_READ, BEEPER, YES_NO, ON_OFF, DATE, STRINGID,
                      KELVIN_CELSIUS)

# Delays NUT uses when ups.conf sets none (seconds, as strings).
DEFAULT_ONDELAY = "30"
DEFAULT_OFFDELAY = "20"
DEFAULT_POLLFREQ = 30


class Subdriver:
    def __init__(self, name, ids, usages, table, possibly=None, defaults=None):
        self.name = name  # driver.version.data
        self.ids = ids  # {(vendorid, productid): tweak name or None}
        self.names = UsageNames(usages, STANDARD_USAGES)
        self.table = table
        self.possibly = possibly  # vendor ids claimed only with a productid option
        d = {"ondelay": DEFAULT_ONDELAY, "offdelay": DEFAULT_OFFDELAY,
             "pollfreq": DEFAULT_POLLFREQ}
        d.update(defaults or {})
        self.defaults = d

    def claim(self, dev, options):
        """True if this subdriver handles `dev` (an object with vendorid...)."""
        if (dev.vendorid, dev.productid) in self.ids:
            return True
        vendors = set(v for v, p in self.ids) | set(self.possibly or ())
        return dev.vendorid in vendors and "productid" in options

    def tweak(self, dev):
        return self.ids.get((dev.vendorid, dev.productid))

    def format_mfr(self, dev):
        return dev.manufacturer

    def format_model(self, dev, dstate):
        return dev.product

    def fix_report_desc(self, dev, desc):
        """Repair known descriptor mistakes in place; True if anything changed."""
        return False


# -- APC ------------------------------------------------------------------------

APC_VENDORID = 0x051D

APC_USAGES = (
    ("APCGeneralCollection", 0xFF860005), ("APCEnvironment", 0xFF860006),
    ("APCProbe1", 0xFF860007), ("APCProbe2", 0xFF860008),
    ("APCBattReplaceDate", 0xFF860016), ("APCBattCapBeforeStartup", 0xFF860019),
    ("APC_UPS_FirmwareRevision", 0xFF860042), ("APCLineFailCause", 0xFF860052),
    ("APCStatusFlag", 0xFF860060), ("APCSensitivity", 0xFF860061),
    ("APCPanelTest", 0xFF860072), ("APCShutdownAfterDelay", 0xFF860076),
    ("APC_USB_FirmwareRevision", 0xFF860079), ("APCDelayBeforeReboot", 0xFF86007C),
    ("APCDelayBeforeShutdown", 0xFF86007D), ("APCDelayBeforeStartup", 0xFF86007E),
    ("BUPHibernate", 0x00850058), ("BUPBattCapBeforeStartup", 0x00860012),
    ("BUPDelayBeforeStartup", 0x00860076), ("BUPSelfTest", 0x00860010),
)


def _apc_date_fun(value, ctx):
    # Hex digits read as decimal: 0x102202 is 2002/10/22.
    v = int(value)
    if v == 0:
        return "not set"
    year = (v & 0xF) + 10 * ((v >> 4) & 0xF)
    month = ((v >> 16) & 0xF) + 10 * ((v >> 20) & 0xF)
    day = ((v >> 8) & 0xF) + 10 * ((v >> 12) & 0xF)
    year += 1900 if year >= 70 else 2000
    return "%04d/%02d/%02d" % (year, month, day)


def _apc_date_nuf(text, ctx):
    try:
        y, m, d = [int(x) for x in text.split("/")]
    except ValueError:
        return None
    if y >= 2070 or m > 12 or d > 31:
        return 0
    y %= 100
    return ((y // 10) << 4) + y % 10 + ((m // 10) << 20) + ((m % 10) << 16) \
        + ((d // 10) << 12) + ((d % 10) << 8)


APC_DATE = Conv(_apc_date_fun, _apc_date_nuf)
APC_STATUSFLAG = Table((8, "!off"), (16, "!off"), (0, "off"))
APC_LINEFAIL_VRANGE = Table((1, "vrange"), (2, "vrange"), (4, "vrange"), (8, "vrange"),
                            (9, "vrange"), (0, "!vrange"))
APC_LINEFAIL_FRANGE = Table((7, "frange"), (0, "!frange"))
APC_SENSITIVITY = Table((0, "low"), (1, "medium"), (2, "high"))

_PS = "UPS.PowerSummary."
_PSS = "UPS.PowerSummary.PresentStatus."

APC_TABLE = [
    Info("battery.charge", _PS + "RemainingCapacity", "%.0f"),
    rw("battery.charge.low", _PS + "RemainingCapacityLimit", "%.0f", SEMI_STATIC),
    Info("battery.charge.warning", _PS + "WarningCapacityLimit", "%.0f"),
    Info("battery.runtime", "UPS.Battery.RunTimeToEmpty", "%.0f"),
    Info("battery.runtime", _PS + "RunTimeToEmpty", "%.0f"),
    rw("battery.runtime.low", "UPS.Battery.RemainingTimeLimit", "%.0f", SEMI_STATIC),
    rw("battery.runtime.low", _PS + "RemainingTimeLimit", "%.0f", SEMI_STATIC),
    Info("battery.voltage", "UPS.Battery.Voltage", "%.1f"),
    Info("battery.voltage", _PS + "Voltage", "%.1f"),
    Info("battery.voltage.nominal", "UPS.Battery.ConfigVoltage", "%.1f"),
    Info("battery.voltage.nominal", _PS + "ConfigVoltage", "%.1f"),
    Info("battery.temperature", "UPS.Battery.Temperature", "%s", 0, KELVIN_CELSIUS),
    Info("battery.type", _PS + "iDeviceChemistry", "%s", 0, STRINGID),
    rw("battery.mfr.date", "UPS.Battery.ManufacturerDate", "%s", SEMI_STATIC, DATE),
    Info("battery.mfr.date", _PS + "APCBattReplaceDate", "%s", 0, APC_DATE),
    Info("battery.date", "UPS.Battery.APCBattReplaceDate", "%s", 0, APC_DATE),
    Info("ups.load", "UPS.Output.PercentLoad", "%.1f"),
    Info("ups.load", "UPS.PowerConverter.PercentLoad", "%.0f"),
    rw("ups.delay.start", _PS + "DelayBeforeStartup", DEFAULT_ONDELAY, ABSENT),
    rw("ups.delay.shutdown", _PS + "DelayBeforeShutdown", DEFAULT_OFFDELAY, ABSENT),
    Info("ups.timer.start", _PS + "DelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.shutdown", _PS + "DelayBeforeShutdown", "%.0f", QUICK),
    Info("ups.timer.reboot", _PS + "DelayBeforeReboot", "%.0f", QUICK),
    rw("ups.delay.start", "UPS.Output.DelayBeforeStartup", DEFAULT_ONDELAY, ABSENT),
    rw("ups.delay.shutdown", "UPS.Output.DelayBeforeShutdown", DEFAULT_OFFDELAY, ABSENT),
    Info("ups.timer.start", "UPS.Output.DelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.shutdown", "UPS.Output.DelayBeforeShutdown", "%.0f", QUICK),
    Info("ups.timer.reboot", "UPS.Output.DelayBeforeReboot", "%.0f", QUICK),
    rw("ups.delay.start", "UPS.APCGeneralCollection.APCDelayBeforeStartup",
       DEFAULT_ONDELAY, ABSENT),
    rw("ups.delay.shutdown", "UPS.APCGeneralCollection.APCDelayBeforeShutdown",
       DEFAULT_OFFDELAY, ABSENT),
    Info("ups.timer.start", "UPS.APCGeneralCollection.APCDelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.shutdown", "UPS.APCGeneralCollection.APCDelayBeforeShutdown", "%.0f",
         QUICK),
    Info("ups.timer.reboot", "UPS.APCGeneralCollection.APCDelayBeforeReboot", "%.0f", QUICK),
    Info("ups.test.result", "UPS.Battery.Test", "%s", 0, TEST_READ),
    Info("ups.beeper.status", _PS + "AudibleAlarmControl", "%s", 0, BEEPER),
    Info("ups.mfr.date", "UPS.ManufacturerDate", "%s", 0, DATE),
    Info("ups.mfr.date", _PS + "ManufacturerDate", "%s", 0, DATE),
    Info("ups.realpower.nominal", "UPS.PowerConverter.ConfigActivePower", "%.0f"),
    Info("ups.realpower.nominal", "UPS.Output.ConfigActivePower", "%.0f"),
    boolean(_PSS + "ACPresent", ONLINE, QUICK),
    boolean(_PSS + "Discharging", DISCHARGING, QUICK),
    boolean(_PSS + "Charging", CHARGING, QUICK),
    boolean(_PSS + "ShutdownImminent", SHUTDOWNIMM),
    boolean(_PSS + "BelowRemainingCapacityLimit", LOWBATT, QUICK),
    boolean(_PSS + "Overload", OVERLOAD),
    boolean(_PSS + "NeedReplacement", REPLACEBATT),
    boolean(_PSS + "RemainingTimeLimitExpired", TIMELIMITEXPIRED),
    boolean(_PSS + "BatteryPresent", NOBATTERY),
    boolean(_PS + "Charging", CHARGING, QUICK),
    boolean(_PS + "Discharging", DISCHARGING, QUICK),
    boolean(_PS + "ACPresent", ONLINE, QUICK),
    boolean(_PS + "BelowRemainingCapacityLimit", LOWBATT, QUICK),
    boolean(_PS + "ShutdownImminent", SHUTDOWNIMM),
    boolean(_PS + "APCStatusFlag", APC_STATUSFLAG, QUICK),
    boolean("UPS.Input.APCLineFailCause", APC_LINEFAIL_VRANGE),
    boolean("UPS.Input.APCLineFailCause", APC_LINEFAIL_FRANGE),
    Info("input.voltage", "UPS.Input.Voltage", "%.1f"),
    Info("input.voltage.nominal", "UPS.Input.ConfigVoltage", "%.0f"),
    rw("input.transfer.low", "UPS.Output.LowVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.transfer.high", "UPS.Output.HighVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.transfer.low", "UPS.Input.LowVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.transfer.high", "UPS.Input.HighVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.sensitivity", "UPS.Input.APCSensitivity", "%s", SEMI_STATIC, APC_SENSITIVITY),
    Info("output.voltage", "UPS.Output.Voltage", "%.1f"),
    Info("output.voltage.nominal", "UPS.Output.ConfigVoltage", "%.1f"),
    Info("output.current", "UPS.Output.Current", "%.2f"),
    Info("output.frequency", "UPS.Output.Frequency", "%.1f"),
    Info("ambient.temperature", "UPS.APCEnvironment.APCProbe1.Temperature", "%s", 0,
         KELVIN_CELSIUS),
    Info("ambient.humidity", "UPS.APCEnvironment.APCProbe1.Humidity", "%.1f"),
    cmd("test.battery.start.quick", "UPS.BatterySystem.Battery.Test", "1"),
    cmd("test.battery.start.quick", "UPS.Battery.Test", "1"),
    cmd("test.battery.start.deep", "UPS.BatterySystem.Battery.Test", "2"),
    cmd("test.battery.start.deep", "UPS.Battery.Test", "2"),
    cmd("test.battery.stop", "UPS.BatterySystem.Battery.Test", "3"),
    cmd("test.battery.stop", "UPS.Battery.Test", "3"),
    cmd("test.panel.start", "UPS.APCPanelTest", "1"),
    cmd("test.panel.stop", "UPS.APCPanelTest", "0"),
    cmd("test.panel.start", _PS + "APCPanelTest", "1"),
    cmd("test.panel.stop", _PS + "APCPanelTest", "0"),
    cmd("load.off.delay", _PS + "DelayBeforeShutdown", DEFAULT_OFFDELAY),
    cmd("load.on.delay", _PS + "DelayBeforeStartup", DEFAULT_ONDELAY),
    cmd("shutdown.stop", _PS + "DelayBeforeShutdown", "-1"),
    cmd("shutdown.reboot", _PS + "DelayBeforeReboot", "10"),
    cmd("load.off.delay", "UPS.Output.DelayBeforeShutdown", DEFAULT_OFFDELAY),
    cmd("load.on.delay", "UPS.Output.DelayBeforeStartup", DEFAULT_ONDELAY),
    cmd("shutdown.stop", "UPS.Output.DelayBeforeShutdown", "-1"),
    cmd("shutdown.reboot", "UPS.Output.DelayBeforeReboot", "10"),
    cmd("load.off.delay", "UPS.APCGeneralCollection.APCDelayBeforeShutdown",
        DEFAULT_OFFDELAY),
    cmd("load.on.delay", "UPS.APCGeneralCollection.APCDelayBeforeStartup", DEFAULT_ONDELAY),
    cmd("shutdown.stop", "UPS.APCGeneralCollection.APCDelayBeforeShutdown", "-1"),
    cmd("shutdown.reboot", "UPS.APCGeneralCollection.APCDelayBeforeReboot", "10"),
    cmd("shutdown.return", "UPS.Output.APCDelayBeforeReboot", "1"),
    cmd("beeper.on", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.off", _PS + "AudibleAlarmControl", "3"),
    cmd("beeper.enable", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.disable", _PS + "AudibleAlarmControl", "1"),
    cmd("beeper.mute", _PS + "AudibleAlarmControl", "3"),
]


# Back-UPS models whose firmware sends longer reports than their descriptor
# says (usbhid-ups's "maxreport" tweak is switched on for them).
APC_MAXREPORT_PRODUCTS = ("Back-UPS ES 525", "Back-UPS CS")


class ApcSubdriver(Subdriver):
    def tweak(self, dev):
        t = Subdriver.tweak(self, dev)
        if t is None and dev.productid == 0x0002:
            for prefix in APC_MAXREPORT_PRODUCTS:
                if (dev.product or "").startswith(prefix):
                    return "maxreport"
        return t

    def format_mfr(self, dev):
        return dev.manufacturer or "APC"

    def format_model(self, dev, dstate):
        # "Back-UPS ES 850G2 FW:938.a2 .I USB FW:a2": model, then firmware.
        model = dev.product or "unknown"
        at = model.find("FW:")
        if at < 0:
            return model
        firmware = model[at + 3:]
        model = model[:max(at - 1, 0)]
        usb = firmware.find("USB FW:")
        if usb >= 0:
            dstate.setinfo("ups.firmware.aux", firmware[usb + 7:])
            firmware = firmware[:max(usb - 1, 0)]
        dstate.setinfo("ups.firmware", firmware)
        return model

    def fix_report_desc(self, dev, desc):
        # Back-UPS XS 1400U (and kin) give input voltages a range below
        # their own high transfer point when set up for 230 V.
        if dev.productid != 0x0002:
            return False
        hvt = desc.find_by_id(0x33, 0x00840054)
        if hvt is None:
            return False
        fixed = False
        volt = desc.find_by_id(0x31, 0x00840030)
        if volt is not None and hvt.logical_max > volt.logical_max:
            volt.logical_min = 0
            volt.logical_max = hvt.logical_max * 2
            fixed = True
        nominal = desc.find_by_id(0x30, 0x00840040)
        if nominal is not None and hvt.logical_max > nominal.logical_max:
            nominal.logical_max = 255
            fixed = True
        return fixed


APC = ApcSubdriver(
    "APC HID 0.101",
    {(APC_VENDORID, 0x0000): None, (APC_VENDORID, 0x0002): None,
     (APC_VENDORID, 0x0003): "pollonly", (APC_VENDORID, 0x0004): "pollonly",
     (APC_VENDORID, 0x0005): None},
    APC_USAGES, APC_TABLE)


# -- CyberPower -----------------------------------------------------------------

CPS_VENDORID = 0x0764
STMICRO_VENDORID = 0x0483

CPS_USAGES = (("CPSFirmwareVersion", 0xFF0100D0), ("CPSInputSensitivity", 0xFF010043))


def _cps_charge(value, ctx):
    return "%.0f" % (value if value < 100.0 else 100.0)


def _cps_battvolt(value, ctx):
    # Some 0764:0501 models report 1.5 times the real battery voltage.
    scale = ctx.scales.get("battery")
    if scale is None and ctx.tweak == "battery_scale":
        nominal = ctx.getinfo("battery.voltage.nominal")
        try:
            nominal = float(nominal) if nominal else 0.0
        except ValueError:
            nominal = 0.0
        if nominal:
            scale = 2.0 / 3 if value / nominal > 1.4 else 1.0
            ctx.scales["battery"] = scale
    return "%.1f" % (value * (scale or 1.0))


def _cps_freq(name):
    def fun(value, ctx):
        scale = ctx.scales.get(name)
        if scale is None and ctx.tweak == "battery_scale":
            if 45 <= value <= 65:
                scale = 1.0
            elif 450 <= value <= 650:
                scale = 0.1
            if scale is not None:
                ctx.scales[name] = scale
        return "%.1f" % (value * (scale or 1.0))
    return Conv(fun)


def _cps_battstatus(value, ctx):
    return "%.0f%%" % value


CPS_SENSITIVITY = Table((0, "low"), (1, "normal"), (2, "high"))
_OUT = "UPS.Output."

CPS_TABLE = [
    Info("battery.type", _PS + "iDeviceChemistry", "%s", 0, STRINGID),
    rw("battery.mfr.date", "UPS.Battery.ManufacturerDate", "%s", SEMI_STATIC, DATE),
    Info("battery.mfr.date", _PS + "iOEMInformation", "%s", 0, STRINGID),
    Info("battery.charge.warning", _PS + "WarningCapacityLimit", "%.0f"),
    rw("battery.charge.low", _PS + "RemainingCapacityLimit", "%.0f", SEMI_STATIC),
    Info("battery.charge", _PS + "RemainingCapacity", "%s", 0, Conv(_cps_charge)),
    Info("battery.runtime", _PS + "RunTimeToEmpty", "%.0f"),
    rw("battery.runtime.low", _PS + "RemainingTimeLimit", "%.0f", SEMI_STATIC),
    Info("battery.voltage.nominal", _PS + "ConfigVoltage", "%.0f"),
    Info("battery.voltage", _PS + "Voltage", "%s", 0, Conv(_cps_battvolt)),
    Info("battery.status", _PS + "FullChargeCapacity", "%s", 0, Conv(_cps_battstatus)),
    Info("ups.load", _OUT + "PercentLoad", "%.0f"),
    Info("ups.beeper.status", _PS + "AudibleAlarmControl", "%s", 0, BEEPER),
    Info("ups.test.result", _OUT + "Test", "%s", 0, TEST_READ),
    Info("ups.power", _OUT + "ApparentPower", "%.0f"),
    Info("ups.power.nominal", _OUT + "ConfigApparentPower", "%.0f"),
    Info("ups.realpower", _OUT + "ActivePower", "%.0f"),
    Info("ups.realpower.nominal", _OUT + "ConfigActivePower", "%.0f"),
    rw("ups.delay.start", _OUT + "DelayBeforeStartup", "120", ABSENT),
    rw("ups.delay.shutdown", _OUT + "DelayBeforeShutdown", "60", ABSENT),
    Info("ups.timer.start", _OUT + "DelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.shutdown", _OUT + "DelayBeforeShutdown", "%.0f", QUICK),
    Info("ups.timer.reboot", _OUT + "DelayBeforeReboot", "%.0f", QUICK),
    Info("ups.firmware", _PS + "CPSFirmwareVersion", "%s", STATIC, STRINGID),
    Info("ups.temperature", _PS + "Temperature", "%s", 0, KELVIN_CELSIUS),
    boolean(_PSS + "ACPresent", ONLINE, QUICK),
    boolean(_PSS + "Charging", CHARGING, QUICK),
    boolean(_PSS + "Discharging", DISCHARGING, QUICK),
    boolean(_PSS + "BelowRemainingCapacityLimit", LOWBATT, QUICK),
    boolean(_PSS + "FullyCharged", FULLYCHARGED),
    boolean(_PSS + "RemainingTimeLimitExpired", TIMELIMITEXPIRED),
    boolean(_PSS + "NeedReplacement", REPLACEBATT),
    boolean(_OUT + "Boost", BOOST),
    boolean(_OUT + "Overload", OVERLOAD),
    Info("input.frequency", "UPS.Input.Frequency", "%.1f", 0, _cps_freq("input")),
    Info("input.voltage.nominal", "UPS.Input.ConfigVoltage", "%.0f"),
    Info("input.voltage", "UPS.Input.Voltage", "%.1f"),
    rw("input.transfer.low", "UPS.Input.LowVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.transfer.high", "UPS.Input.HighVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.transfer.low", _OUT + "LowVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.transfer.high", _OUT + "HighVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.sensitivity", _OUT + "CPSInputSensitivity", "%s", SEMI_STATIC | ENUM,
       CPS_SENSITIVITY, length=0),
    Info("output.frequency", _OUT + "Frequency", "%.1f", 0, _cps_freq("output")),
    Info("output.voltage", _OUT + "Voltage", "%.1f"),
    Info("output.voltage.nominal", _OUT + "ConfigVoltage", "%.0f"),
    cmd("test.battery.start.quick", _OUT + "Test", "1"),
    cmd("test.battery.start.deep", _OUT + "Test", "2"),
    cmd("test.battery.stop", _OUT + "Test", "3"),
    cmd("load.off.delay", _OUT + "DelayBeforeShutdown", "60"),
    cmd("load.on.delay", _OUT + "DelayBeforeStartup", "120"),
    cmd("shutdown.stop", _OUT + "DelayBeforeShutdown", "-1"),
    cmd("shutdown.reboot", _OUT + "DelayBeforeReboot", "10"),
    cmd("beeper.on", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.off", _PS + "AudibleAlarmControl", "3"),
    cmd("beeper.enable", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.disable", _PS + "AudibleAlarmControl", "1"),
    cmd("beeper.mute", _PS + "AudibleAlarmControl", "3"),
]

CPS_VOLTAGE_LOGMAX = 511
CPS_NOMINALPWR_LOGMAX = 2048


class CpsSubdriver(Subdriver):
    def format_mfr(self, dev):
        return dev.manufacturer or "CPS"

    def fix_report_desc(self, dev, desc):
        # Several CyberPower firmwares give the output voltage the range of
        # the high transfer point, squeeze voltages into one signed byte,
        # or cap the nominal power below what the UPS reports.
        if dev.vendorid != CPS_VENDORID or dev.productid not in (0x0501, 0x0601):
            return False
        fixed = False
        hvt = desc.find_by_id(0x10, 0x00840054)
        out = desc.find_by_id(0x12, 0x00840030)
        inp = desc.find_by_id(0x0F, 0x00840030)
        if hvt is not None and out is not None and \
                (hvt.logical_min, hvt.logical_max) == (out.logical_min, out.logical_max):
            out.logical_min, out.logical_max = 0, CPS_VOLTAGE_LOGMAX
            if inp is not None and \
                    (hvt.logical_min, hvt.logical_max) == (inp.logical_min, inp.logical_max):
                inp.logical_min, inp.logical_max = 0, CPS_VOLTAGE_LOGMAX
            fixed = True
        if out is not None and inp is not None and \
                (out.logical_max_assumed or inp.logical_max_assumed):
            omax, imax = out.logical_max, inp.logical_max
            if out.logical_max_assumed and omax < CPS_VOLTAGE_LOGMAX:
                omax = CPS_VOLTAGE_LOGMAX
            if inp.logical_max_assumed and imax < CPS_VOLTAGE_LOGMAX:
                imax = CPS_VOLTAGE_LOGMAX
            if out.logical_max_assumed and omax < imax:
                omax = imax
            elif inp.logical_max_assumed and imax < omax:
                imax = omax
            if inp.logical_max_assumed and inp.size > 1:
                imax = min(imax, (1 << inp.size) - 1)
            if out.logical_max_assumed and out.size > 1:
                omax = min(omax, (1 << out.size) - 1)
            if (imax, omax) != (inp.logical_max, out.logical_max):
                inp.logical_max, out.logical_max = imax, omax
                fixed = True
        power = desc.find_by_id(0x18, 0x00840044)
        if power is not None and power.logical_max < CPS_NOMINALPWR_LOGMAX:
            power.logical_max = CPS_NOMINALPWR_LOGMAX
            fixed = True
        return fixed


CPS = CpsSubdriver(
    "CyberPower HID 0.83",
    {(CPS_VENDORID, 0x0005): None, (CPS_VENDORID, 0x0501): "battery_scale",
     (CPS_VENDORID, 0x0601): None, (STMICRO_VENDORID, 0xA430): None},
    CPS_USAGES, CPS_TABLE, possibly=(CPS_VENDORID,),
    defaults={"ondelay": "120", "offdelay": "60", "pollfreq": 12})


# -- Eaton / MGE ----------------------------------------------------------------

MGE_USAGES = (
    ("Statistic", 0xFFFF0003), ("StatisticSystem", 0xFFFF0004), ("USB", 0xFFFF0005),
    ("Phase", 0xFFFF0010), ("Inverter", 0xFFFF0014), ("ConfigurationFailure", 0xFFFF002D),
    ("ConverterType", 0xFFFF0041), ("AutomaticRestart", 0xFFFF0043),
    ("ForcedReboot", 0xFFFF0044), ("TestPeriod", 0xFFFF0045),
    ("DeepDischargeProtection", 0xFFFF0049), ("ShortCircuit", 0xFFFF004A),
    ("ExtendedVoltageMode", 0xFFFF004B), ("SensitivityMode", 0xFFFF004C),
    ("RemainingCapacityLimitSetting", 0xFFFF004D), ("ExtendedFrequencyMode", 0xFFFF004E),
    ("LowVoltageBoostTransfer", 0xFFFF0050), ("HighVoltageBoostTransfer", 0xFFFF0051),
    ("LowVoltageBuckTransfer", 0xFFFF0052), ("HighVoltageBuckTransfer", 0xFFFF0053),
    ("RestartLevel", 0xFFFF005F), ("EmergencyStop", 0xFFFF0068),
    ("PowerFactor", 0xFFFF0069), ("ChargerType", 0xFFFF006B),
    ("VoltageTooHigh", 0xFFFF0074), ("VoltageTooLow", 0xFFFF0075),
    ("FanFailure", 0xFFFF0077), ("WiringFault", 0xFFFF0078), ("OverThreshold", 0xFFFF007E),
    ("Country", 0xFFFF0095), ("Time", 0xFFFF0097), ("System", 0xFFFF00E5),
    ("iVersion", 0xFFFF00F1), ("EnergySaving", 0xFFFF0046), ("StartOnBattery", 0xFFFF0047),
    ("Schedule", 0xFFFF0048), ("ShutdownTimer", 0xFFFF005D), ("ControlStandby", 0xFFFF0072),
    ("Floating", 0xFFFF0079), ("Efficiency", 0xFFFF0086), ("ABMEnable", 0xFFFF0087),
    ("Mode", 0xFFFF0094), ("iModel", 0xFFFF00F0), ("iPartNumber", 0xFFFF00F3),
)


def _eaton_charging(value, ctx):
    # Charging stays set while some Eaton units float their battery: no
    # CHRG once battery.charge reads 100.
    if int(value) == 1:
        charge = ctx.getinfo("battery.charge")
        try:
            if charge is not None and float(charge) >= 100.0:
                return "!chrg"
        except ValueError:
            pass
        return "chrg"
    return "!chrg"


def _eaton_discharging(value, ctx):
    return "dischrg" if int(value) == 1 else "!dischrg"


def _eaton_converter_online(value, ctx):
    if "off" in ctx.status.bits:
        return None
    return "!online" if int(value) == 0 else "online"


def _powerfactor(value, ctx):
    return "%.2f" % (value / 100)


def _capacity(value, ctx):
    return "%.2f" % (value / 3600)


MGE_SENSITIVITY = Table((0, "normal"), (1, "high"), (2, "low"))
EATON_ENABLE = Table((0, "disabled"), (1, "enabled"))
MGE_ONBATT = Table((1, "!online"), (0, "online"))
MGE_UPSTYPE = Table((1, "offline / line interactive"), (2, "online"),
                    (3, "online - unitary/parallel"),
                    (4, "online - parallel with hot standy"),
                    (5, "online - hot standby redundancy"))
_PC = "UPS.PowerConverter."
_BS = "UPS.BatterySystem."
_MAIN = "UPS.OutletSystem.Outlet.[1]."
_GROUP1 = "UPS.OutletSystem.Outlet.[2]."

MGE_TABLE = [
    Info("battery.charge", _PS + "RemainingCapacity", "%.0f"),
    rw("battery.charge.low", _PS + "RemainingCapacityLimitSetting", "%.0f", SEMI_STATIC,
       length=5),
    Info("battery.charge.low", _PS + "RemainingCapacityLimit", "%.0f", STATIC),
    rw("battery.charge.restart", _PS + "RestartLevel", "%.0f", SEMI_STATIC, length=3),
    Info("battery.capacity", _BS + "Battery.DesignCapacity", "%s", STATIC, Conv(_capacity)),
    Info("battery.runtime", _PS + "RunTimeToEmpty", "%.0f"),
    rw("battery.runtime.low", _PS + "RemainingTimeLimit", "%.0f"),
    Info("battery.temperature", _BS + "Battery.Temperature", "%s", 0, KELVIN_CELSIUS),
    Info("battery.type", _PS + "iDeviceChemistry", "%s", STATIC, STRINGID),
    Info("battery.voltage", _BS + "Voltage", "%.1f"),
    Info("battery.voltage.nominal", _BS + "ConfigVoltage", "%.0f", STATIC),
    rw("battery.protection", _BS + "Battery.DeepDischargeProtection", "%s", SEMI_STATIC,
       YES_NO, length=5),
    rw("battery.energysave", _PC + "Input.[3].EnergySaving", "%s", SEMI_STATIC, YES_NO,
       length=5),
    Info("ups.firmware", _PS + "iVersion", "%s", STATIC, STRINGID),
    Info("ups.load", _PS + "PercentLoad", "%.0f"),
    rw("ups.load.high", "UPS.Flow.[4].ConfigPercentLoad", "%.0f", SEMI_STATIC, length=5),
    Info("ups.efficiency", _PC + "Output.Efficiency", "%.0f"),
    rw("ups.delay.start", _PS + "DelayBeforeStartup", DEFAULT_ONDELAY, ABSENT),
    rw("ups.delay.shutdown", _PS + "DelayBeforeShutdown", DEFAULT_OFFDELAY, ABSENT),
    Info("ups.timer.start", _PS + "DelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.shutdown", _PS + "DelayBeforeShutdown", "%.0f", QUICK),
    Info("ups.timer.reboot", _PS + "DelayBeforeReboot", "%.0f", QUICK),
    Info("ups.test.result", _BS + "Battery.Test", "%s", 0, TEST_READ),
    rw("ups.test.interval", _BS + "Battery.TestPeriod", "%.0f", SEMI_STATIC, length=8),
    Info("ups.beeper.status", _BS + "Battery.AudibleAlarmControl", "%s", SEMI_STATIC, BEEPER),
    Info("ups.beeper.status", _PS + "AudibleAlarmControl", "%s", SEMI_STATIC, BEEPER),
    Info("ups.beeper.status", "UPS.AudibleAlarmControl", "%s", SEMI_STATIC, BEEPER),
    Info("ups.temperature", _PS + "Temperature", "%s", 0, KELVIN_CELSIUS),
    Info("ups.power", _PC + "Output.ApparentPower", "%.0f"),
    Info("ups.power.nominal", "UPS.Flow.[4].ConfigApparentPower", "%.0f", STATIC),
    Info("ups.realpower", _PC + "Output.ActivePower", "%.0f"),
    Info("ups.realpower.nominal", "UPS.Flow.[4].ConfigActivePower", "%.0f", STATIC),
    rw("ups.start.auto", _PC + "Input.[1].AutomaticRestart", "%s", SEMI_STATIC, YES_NO,
       length=5),
    rw("ups.start.reboot", _PC + "Output.ForcedReboot", "%s", SEMI_STATIC, YES_NO, length=5),
    rw("ups.start.battery", _PC + "Input.[3].StartOnBattery", "%s", SEMI_STATIC, YES_NO,
       length=5),
    rw("ups.shutdown", _PSS + "Switchable", "%s", SEMI_STATIC | ENUM, EATON_ENABLE),
    Info("ups.type", _PC + "ConverterType", "%s", STATIC, MGE_UPSTYPE),
    boolean(_PSS + "ACPresent", ONLINE, QUICK),
    boolean(_PC + "Input.[1].PresentStatus.Used", ONLINE),
    boolean(_PSS + "Discharging", Conv(_eaton_discharging), QUICK),
    boolean(_PSS + "Charging", Conv(_eaton_charging), QUICK),
    boolean(_PSS + "BelowRemainingCapacityLimit", LOWBATT, QUICK),
    boolean(_PC + "Output.Overload.[1].PresentStatus.OverThreshold", OVERLOAD),
    boolean(_PSS + "Overload", OVERLOAD),
    boolean(_PSS + "NeedReplacement", REPLACEBATT),
    boolean(_PC + "Input.[1].PresentStatus.Buck", TRIM),
    boolean(_PC + "Input.[1].PresentStatus.Boost", BOOST),
    boolean(_PC + "Input.[1].PresentStatus.VoltageOutOfRange", VRANGE),
    boolean(_PC + "Input.[1].PresentStatus.FrequencyOutOfRange", FRANGE),
    boolean(_PSS + "Good", OFF),
    boolean(_PC + "Input.[1].PresentStatus.Used", Conv(_eaton_converter_online)),
    boolean(_PC + "Input.[4].PresentStatus.Used", BYPASS_MANUAL),
    boolean(_PSS + "FanFailure", FANFAIL),
    boolean(_BS + "Battery.PresentStatus.Present", NOBATTERY),
    boolean(_BS + "Charger.PresentStatus.InternalFailure", CHARGERFAIL),
    boolean(_BS + "Charger.PresentStatus.VoltageTooHigh", BATTVOLTHI),
    boolean(_PC + "Input.[1].PresentStatus.VoltageTooHigh", BATTVOLTHI),
    boolean(_BS + "Battery.PresentStatus.VoltageTooHigh", BATTVOLTHI),
    boolean(_BS + "Charger.PresentStatus.VoltageTooLow", BATTVOLTLO),
    boolean(_PC + "Input.[1].PresentStatus.VoltageTooLow", MGE_ONBATT),
    boolean(_PSS + "InternalFailure", COMMFAULT),
    boolean(_PSS + "OverTemperature", OVERHEAT),
    boolean(_PSS + "ShutdownImminent", SHUTDOWNIMM),
    Info("ups.alarm", _PSS + "EmergencyStop", None, 0, Table((1, "Emergency stop!"))),
    Info("ups.alarm", _PC + "Input.[1].PresentStatus.WiringFault", None, 0,
         Table((1, "Wiring fault!"))),
    Info("ups.alarm", _PSS + "ConfigurationFailure", None, 0,
         Table((1, "Fatal EEPROM fault!"))),
    Info("ups.alarm", _PC + "Inverter.PresentStatus.VoltageTooHigh", None, 0,
         Table((1, "Inverter AC voltage too high!"))),
    Info("ups.alarm", _PC + "Inverter.PresentStatus.VoltageTooLow", None, 0,
         Table((1, "Inverter AC voltage too low!"))),
    Info("ups.alarm", _PC + "Output.PresentStatus.ShortCircuit", None, 0,
         Table((1, "Output short circuit!"))),
    Info("input.voltage", _PC + "Input.[1].Voltage", "%.1f"),
    Info("input.voltage.nominal", "UPS.Flow.[1].ConfigVoltage", "%.0f", STATIC),
    Info("input.current", _PC + "Input.[1].Current", "%.2f"),
    Info("input.current.nominal", "UPS.Flow.[1].ConfigCurrent", "%.2f", STATIC),
    Info("input.frequency", _PC + "Input.[1].Frequency", "%.1f"),
    Info("input.frequency.nominal", "UPS.Flow.[1].ConfigFrequency", "%.0f", STATIC),
    rw("input.transfer.low", _PC + "Output.LowVoltageTransfer", "%.0f", SEMI_STATIC,
       length=5),
    rw("input.transfer.boost.low", _PC + "Output.LowVoltageBoostTransfer", "%.0f",
       SEMI_STATIC, length=5),
    rw("input.transfer.boost.high", _PC + "Output.HighVoltageBoostTransfer", "%.0f",
       SEMI_STATIC, length=5),
    rw("input.transfer.trim.low", _PC + "Output.LowVoltageBuckTransfer", "%.0f",
       SEMI_STATIC, length=5),
    rw("input.transfer.high", _PC + "Output.HighVoltageTransfer", "%.0f", SEMI_STATIC,
       length=5),
    rw("input.transfer.trim.high", _PC + "Output.HighVoltageBuckTransfer", "%.0f",
       SEMI_STATIC, length=5),
    rw("input.sensitivity", _PC + "Output.SensitivityMode", "%s", SEMI_STATIC,
       MGE_SENSITIVITY),
    Info("output.voltage", _PC + "Output.Voltage", "%.1f"),
    Info("output.current", _PC + "Output.Current", "%.2f"),
    Info("output.current.nominal", "UPS.Flow.[4].ConfigCurrent", "%.2f"),
    Info("output.frequency", _PC + "Output.Frequency", "%.1f"),
    Info("output.frequency.nominal", "UPS.Flow.[4].ConfigFrequency", "%.0f", STATIC),
    Info("output.powerfactor", _PC + "Output.PowerFactor", "%s", 0, Conv(_powerfactor)),
    rw("output.voltage.nominal", "UPS.Flow.[4].ConfigVoltage", "%.0f", SEMI_STATIC,
       length=3),
    # the main outlet group is Outlet.[1]; the first switchable one Outlet.[2]
    Info("outlet.id", _MAIN + "OutletID", "%.0f", STATIC),
    rw("outlet.desc", _MAIN + "OutletID", "Main Outlet", ABSENT, length=20),
    Info("outlet.switchable", _MAIN + "PresentStatus.Switchable", "%s", STATIC, YES_NO),
    Info("outlet.power", _MAIN + "ApparentPower", "%.0f"),
    Info("outlet.realpower", _MAIN + "ActivePower", "%.0f"),
    Info("outlet.current", _MAIN + "Current", "%.2f"),
    Info("outlet.1.id", _GROUP1 + "OutletID", "%.0f", STATIC),
    rw("outlet.1.desc", _GROUP1 + "OutletID", "PowerShare Outlet 1", ABSENT, length=20),
    Info("outlet.1.switchable", _GROUP1 + "PresentStatus.Switchable", "%s", STATIC, YES_NO),
    Info("outlet.1.status", _GROUP1 + "PresentStatus.SwitchOn/Off", "%s", 0, ON_OFF),
    Info("outlet.1.status", _PSS + "ACPresent", "%s", 0, ON_OFF),  # one unbacked outlet
    cmd("test.battery.start.quick", _BS + "Battery.Test", "1"),
    cmd("test.battery.start.deep", _BS + "Battery.Test", "2"),
    cmd("test.battery.stop", _BS + "Battery.Test", "3"),
    cmd("load.off.delay", _PS + "DelayBeforeShutdown", DEFAULT_OFFDELAY),
    cmd("load.on.delay", _PS + "DelayBeforeStartup", DEFAULT_ONDELAY),
    cmd("shutdown.stop", _PS + "DelayBeforeShutdown", "-1"),
    cmd("shutdown.reboot", _PS + "DelayBeforeReboot", "10"),
    cmd("beeper.off", _PS + "AudibleAlarmControl", "1"),
    cmd("beeper.on", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.mute", _BS + "Battery.AudibleAlarmControl", "3"),
    cmd("beeper.mute", _PS + "AudibleAlarmControl", "3"),
    cmd("beeper.disable", _BS + "Battery.AudibleAlarmControl", "1"),
    cmd("beeper.disable", _PS + "AudibleAlarmControl", "1"),
    cmd("beeper.enable", _BS + "Battery.AudibleAlarmControl", "2"),
    cmd("beeper.enable", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.disable", "UPS.AudibleAlarmControl", "1"),
    cmd("beeper.enable", "UPS.AudibleAlarmControl", "2"),
]
# XXX: mge-hid's model detection (Evolution, Pulsar, 3S...), its advanced
# battery monitoring, outlet groups beyond the first, outlet commands,
# ECO/bypass modes and ups.date/ups.time are not carried over: they depend
# on per-series knowledge no replayed unit here exercises.

MGE_VENDORID = 0x0463


class MgeSubdriver(Subdriver):
    def claim(self, dev, options):
        if dev.vendorid == 0x06DA:  # Phoenixtec: only AEG-branded units
            return "AEG" in (dev.manufacturer or "") or "AEG" in (dev.product or "")
        if dev.vendorid == 0x0665 and (dev.vendorid, dev.productid) in self.ids:
            return "KSTAR" in (dev.manufacturer or "")
        return Subdriver.claim(self, dev, options)

    def format_mfr(self, dev):
        return dev.manufacturer or "Eaton"


MGE = MgeSubdriver(
    "MGE HID 1.56",
    {(MGE_VENDORID, 0x0001): None, (MGE_VENDORID, 0xFFFF): None, (0x047C, 0xFFFF): None,
     (0x0592, 0x0004): None, (0x03F0, 0x1FE5): None, (0x03F0, 0x1FE6): None,
     (0x03F0, 0x1FE7): None, (0x03F0, 0x1FE8): None, (0x2B2D, 0xFFFF): None,
     (0x06DA, 0xFFFF): None, (0x04B3, 0x0001): None, (0x0665, 0x0001): None},
    MGE_USAGES, MGE_TABLE)


# -- Tripp Lite -----------------------------------------------------------------

TRIPPLITE_USAGES = (
    ("TLCustom", 0xFFFF0010), ("TLDelayBeforeStartup", 0xFFFF0056),
    ("TLLowVoltageTransferMax", 0xFFFF0057), ("TLLowVoltageTransferMin", 0xFFFF0058),
    ("TLHighVoltageTransferMax", 0xFFFF0059), ("TLHighVoltageTransferMin", 0xFFFF005A),
    ("OutletState", 0xFFFF007A), ("OutletCount", 0xFFFF007B),
    ("UPSFirmwareVersion", 0xFFFF007C), ("CommunicationProtocolVersion", 0xFFFF007D),
    ("CommunicationVersion", 0xFFFF007E), ("iUPSPartNumber", 0xFFFF007F),
    ("AutoOnDelay", 0xFFFF0080), ("TLWatchdog", 0xFFFF0092),
    ("TLOutletsAvailableMask", 0xFFFF0095), ("TLOutletsStatusMask", 0xFFFF0096),
    # Some OMNI1000LCD firmware put these four on page 0x84 instead of 0x85.
    ("TLCharging", 0x00840044), ("TLDischarging", 0x00840045),
    ("TLNeedReplacement", 0x0084004B), ("TLACPresent", 0x008400D0),
)

# Scales per tweak: battery voltage, I/O voltage, I/O frequency, I/O current.
_TL_SCALES = {None: (1.0, 1.0, 1.0, 1.0), "battery_scale_0dot1": (0.1, 1.0, 1.0, 1.0),
              "smart1500lcdt": (100000.0, 100000.0, 0.01, 0.01)}


def _tl_scaled(index):
    def fun(value, ctx):
        return "%.1f" % (_TL_SCALES.get(ctx.tweak, _TL_SCALES[None])[index] * value)
    return Conv(fun)


def _tl_chemistry(value, ctx):
    if ctx.productid in (0x1003, 0x2005):
        return "unknown"
    return ctx.get_string(int(value)) or None


_OUTLET = "UPS.OutletSystem.Outlet."

TRIPPLITE_TABLE = [
    Info("device.part", "UPS.TLCustom.[1].iUPSPartNumber", "%s", STATIC, STRINGID),
    Info("battery.charge", _PS + "RemainingCapacity", "%.0f"),
    Info("battery.charge", _BS + "Battery.RemainingCapacity", "%.0f"),
    rw("battery.charge.low", _PS + "RemainingCapacityLimit", "%.0f", SEMI_STATIC, length=5),
    Info("battery.charge.warning", _PS + "WarningCapacityLimit", "%.0f"),
    Info("battery.runtime", _PS + "RunTimeToEmpty", "%.0f"),
    Info("battery.voltage.nominal", _BS + "Battery.ConfigVoltage", "%.1f", STATIC),
    Info("battery.voltage", _BS + "Battery.Voltage", "%s", 0, _tl_scaled(0)),
    Info("battery.type", _PS + "iDeviceChemistry", "%s", STATIC, Conv(_tl_chemistry)),
    Info("battery.temperature", _BS + "Temperature", "%s", 0, KELVIN_CELSIUS),
    rw("ups.delay.start", _OUTLET + "DelayBeforeStartup", DEFAULT_ONDELAY, ABSENT),
    rw("ups.delay.start", _OUTLET + "TLDelayBeforeStartup", DEFAULT_ONDELAY, ABSENT),
    rw("ups.delay.shutdown", _OUTLET + "DelayBeforeShutdown", DEFAULT_OFFDELAY, ABSENT),
    Info("ups.timer.start", _OUTLET + "DelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.start", _OUTLET + "TLDelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.shutdown", _OUTLET + "DelayBeforeShutdown", "%.0f", QUICK),
    Info("ups.timer.reboot", _OUTLET + "DelayBeforeReboot", "%.0f", QUICK),
    Info("ups.test.result", _BS + "Test", "%s", 0, TEST_READ),
    Info("ups.beeper.status", _PS + "AudibleAlarmControl", "%s", 0, BEEPER),
    Info("ups.power.nominal", "UPS.Flow.ConfigApparentPower", "%.0f", STATIC),
    Info("ups.power", _OUTLET + "ActivePower", "%.1f"),
    Info("ups.power", _PC + "Output.ActivePower", "%.1f"),
    Info("ups.load", _OUTLET + "PercentLoad", "%.0f"),
    Info("ups.firmware", "UPS.TLCustom.[1].UPSFirmwareVersion", "%.0f", STATIC),
    Info("ups.watchdog.status", _OUTLET + "TLWatchdog", "%.0f"),
    boolean(_PSS + "InternalFailure", COMMFAULT),
    boolean(_PSS + "ShutdownImminent", SHUTDOWNIMM),
    boolean(_PSS + "ACPresent", ONLINE, QUICK),
    boolean(_PSS + "BelowRemainingCapacityLimit", LOWBATT, QUICK),
    boolean(_PSS + "FullyCharged", FULLYCHARGED, QUICK),
    boolean(_PSS + "Charging", CHARGING, QUICK),
    boolean(_PSS + "Discharging", DISCHARGING, QUICK),
    boolean(_PSS + "FullyDischarged", DEPLETED, QUICK),
    boolean(_PSS + "NeedReplacement", REPLACEBATT),
    boolean(_PSS + "TLACPresent", ONLINE, QUICK),
    boolean(_PSS + "TLDischarging", DISCHARGING, QUICK),
    Info("ups.load.nominal", "UPS.Flow.ConfigPercentLoad", "%.0f"),
    boolean(_PSS + "TLCharging", CHARGING, QUICK),
    boolean(_PSS + "TLNeedReplacement", REPLACEBATT),
    boolean(_PC + "PresentStatus.VoltageOutOfRange", VRANGE),
    boolean(_PC + "PresentStatus.Buck", TRIM),
    boolean(_PC + "PresentStatus.Boost", BOOST),
    boolean(_PC + "PresentStatus.Overload", OVERLOAD),
    boolean(_PC + "PresentStatus.OverTemperature", OVERHEAT),
    boolean(_PC + "PresentStatus.InternalFailure", COMMFAULT),
    boolean(_PC + "PresentStatus.AwaitingPower", AWAITINGPOWER),
    Info("input.voltage.nominal", _PS + "Input.ConfigVoltage", "%.0f", STATIC),
    Info("input.voltage", _PS + "Input.Voltage", "%s", 0, _tl_scaled(1)),
    Info("input.voltage", _PC + "Input.Voltage", "%s", 0, _tl_scaled(1)),
    Info("input.frequency", _PC + "Input.Frequency", "%s", 0, _tl_scaled(2)),
    rw("input.transfer.low", _PC + "Output.LowVoltageTransfer", "%.1f", SEMI_STATIC,
       length=5),
    Info("input.transfer.low.max", _PC + "Output.TLLowVoltageTransferMax", "%.0f", STATIC),
    Info("input.transfer.low.min", _PC + "Output.TLLowVoltageTransferMin", "%.0f", STATIC),
    rw("input.transfer.high", _PC + "Output.HighVoltageTransfer", "%.1f", SEMI_STATIC,
       length=5),
    Info("input.transfer.high.max", _PC + "Output.TLHighVoltageTransferMax", "%.0f", STATIC),
    Info("input.transfer.high.min", _PC + "Output.TLHighVoltageTransferMin", "%.0f", STATIC),
    Info("output.voltage.nominal", "UPS.Flow.ConfigVoltage", "%.0f", STATIC),
    Info("output.voltage", _PC + "Output.Voltage", "%s", 0, _tl_scaled(1)),
    Info("output.voltage", _PS + "Voltage", "%s", 0, _tl_scaled(1)),
    Info("output.current", _PC + "Output.Current", "%s", 0, _tl_scaled(3)),
    Info("output.frequency.nominal", "UPS.Flow.ConfigFrequency", "%.0f", STATIC),
    Info("output.frequency", _PC + "Output.Frequency", "%s", 0, _tl_scaled(2)),
    cmd("test.battery.start.quick", _BS + "Test", "1"),
    cmd("test.battery.start.deep", _BS + "Test", "2"),
    cmd("test.battery.stop", _BS + "Test", "3"),
    cmd("load.off.delay", _OUTLET + "DelayBeforeShutdown", DEFAULT_OFFDELAY),
    cmd("load.on.delay", _OUTLET + "DelayBeforeStartup", DEFAULT_ONDELAY),
    cmd("load.on.delay", _OUTLET + "TLDelayBeforeStartup", DEFAULT_ONDELAY),
    cmd("shutdown.stop", _OUTLET + "DelayBeforeShutdown", "-1"),
    cmd("shutdown.reboot", _OUTLET + "DelayBeforeReboot", "10"),
    cmd("shutdown.reboot", _OUTLET + "TLWatchdog", "10"),
    cmd("reset.watchdog", _OUTLET + "TLWatchdog", "60"),
    cmd("beeper.on", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.off", _PS + "AudibleAlarmControl", "3"),
    cmd("beeper.disable", _PS + "AudibleAlarmControl", "1"),
    cmd("beeper.enable", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.mute", _PS + "AudibleAlarmControl", "3"),
]


class TrippliteSubdriver(Subdriver):
    def claim(self, dev, options):
        if (dev.vendorid, dev.productid) in self.ids:
            return True
        if dev.vendorid == 0x09AE:
            return "productid" in options
        return False


def _tripplite_ids():
    ids = {}
    for pid in (0x1003, 0x1007, 0x1008, 0x1009, 0x1010, 0x2005, 0x2007, 0x2008, 0x2009,
                0x2010, 0x2011, 0x2012, 0x2013, 0x2014):
        ids[(0x09AE, pid)] = "battery_scale_0dot1"
    for pid in (0x1330, 0x3008, 0x3009, 0x3010, 0x3011, 0x3012, 0x3013, 0x3014, 0x3015,
                0x4001, 0x4002, 0x4003, 0x4004, 0x4005, 0x4006, 0x4007, 0x4008):
        ids[(0x09AE, pid)] = None
    ids[(0x09AE, 0x3016)] = "smart1500lcdt"
    ids[(0x09AE, 0x3024)] = "smart1500lcdt"
    for pid in (0x0001, 0x1FE0, 0x1FE1, 0x1FE2, 0x1FE3, 0x1F06, 0x1F08, 0x1F09, 0x1F0A):
        ids[(0x03F0, pid)] = None
    ids[(0x05DD, 0xA011)] = None
    ids[(0x05DD, 0xA0A0)] = None
    return ids


TRIPPLITE = TrippliteSubdriver("TrippLite HID 0.82", _tripplite_ids(), TRIPPLITE_USAGES,
                               TRIPPLITE_TABLE)


# -- any HID Power Device -------------------------------------------------------

GENERIC_TABLE = [
    Info("battery.charge", _PS + "RemainingCapacity", "%.0f"),
    rw("battery.charge.low", _PS + "RemainingCapacityLimit", "%.0f", SEMI_STATIC),
    Info("battery.charge.warning", _PS + "WarningCapacityLimit", "%.0f"),
    Info("battery.runtime", _PS + "RunTimeToEmpty", "%.0f"),
    Info("battery.runtime", "UPS.Battery.RunTimeToEmpty", "%.0f"),
    rw("battery.runtime.low", _PS + "RemainingTimeLimit", "%.0f", SEMI_STATIC),
    Info("battery.voltage", "UPS.Battery.Voltage", "%.1f"),
    Info("battery.voltage", _PS + "Voltage", "%.1f"),
    Info("battery.voltage.nominal", "UPS.Battery.ConfigVoltage", "%.1f"),
    Info("battery.voltage.nominal", _PS + "ConfigVoltage", "%.1f"),
    Info("battery.type", _PS + "iDeviceChemistry", "%s", STATIC, STRINGID),
    rw("battery.mfr.date", "UPS.Battery.ManufacturerDate", "%s", SEMI_STATIC, DATE),
    Info("battery.temperature", "UPS.Battery.Temperature", "%s", 0, KELVIN_CELSIUS),
    Info("ups.load", _PS + "PercentLoad", "%.0f"),
    rw("ups.load.high", "UPS.Flow.[4].ConfigPercentLoad", "%.0f", SEMI_STATIC, length=5),
    Info("ups.efficiency", _PC + "Output.Efficiency", "%.0f"),
    Info("ups.load", "UPS.Output.PercentLoad", "%.0f"),
    Info("ups.load", "UPS.PowerConverter.PercentLoad", "%.0f"),
    rw("ups.delay.start", _PS + "DelayBeforeStartup", DEFAULT_ONDELAY, ABSENT),
    rw("ups.delay.shutdown", _PS + "DelayBeforeShutdown", DEFAULT_OFFDELAY, ABSENT),
    Info("ups.timer.start", _PS + "DelayBeforeStartup", "%.0f", QUICK),
    Info("ups.timer.shutdown", _PS + "DelayBeforeShutdown", "%.0f", QUICK),
    Info("ups.test.result", "UPS.Battery.Test", "%s", 0, TEST_READ),
    Info("ups.beeper.status", _PS + "AudibleAlarmControl", "%s", 0, BEEPER),
    Info("ups.realpower.nominal", "UPS.Output.ConfigActivePower", "%.0f"),
    Info("ups.power.nominal", "UPS.Output.ConfigApparentPower", "%.0f"),
    Info("ups.temperature", _PS + "Temperature", "%s", 0, KELVIN_CELSIUS),
    boolean(_PSS + "ACPresent", ONLINE, QUICK),
    boolean(_PSS + "Discharging", DISCHARGING, QUICK),
    boolean(_PSS + "Charging", CHARGING, QUICK),
    boolean(_PSS + "BelowRemainingCapacityLimit", LOWBATT, QUICK),
    boolean(_PSS + "RemainingTimeLimitExpired", TIMELIMITEXPIRED),
    boolean(_PSS + "ShutdownImminent", SHUTDOWNIMM),
    boolean(_PSS + "NeedReplacement", REPLACEBATT),
    boolean(_PSS + "Overload", OVERLOAD),
    boolean(_PSS + "FullyCharged", FULLYCHARGED),
    boolean(_PSS + "BatteryPresent", NOBATTERY),
    Info("input.voltage", "UPS.Input.Voltage", "%.1f"),
    Info("input.voltage.nominal", "UPS.Input.ConfigVoltage", "%.0f"),
    Info("input.frequency", "UPS.Input.Frequency", "%.1f"),
    rw("input.transfer.low", "UPS.Input.LowVoltageTransfer", "%.0f", SEMI_STATIC),
    rw("input.transfer.high", "UPS.Input.HighVoltageTransfer", "%.0f", SEMI_STATIC),
    Info("output.voltage", "UPS.Output.Voltage", "%.1f"),
    Info("output.voltage.nominal", "UPS.Output.ConfigVoltage", "%.0f"),
    Info("output.frequency", "UPS.Output.Frequency", "%.1f"),
    Info("output.current", "UPS.Output.Current", "%.2f"),
    cmd("test.battery.start.quick", "UPS.Battery.Test", "1"),
    cmd("test.battery.start.deep", "UPS.Battery.Test", "2"),
    cmd("test.battery.stop", "UPS.Battery.Test", "3"),
    cmd("load.off.delay", _PS + "DelayBeforeShutdown", DEFAULT_OFFDELAY),
    cmd("load.on.delay", _PS + "DelayBeforeStartup", DEFAULT_ONDELAY),
    cmd("shutdown.stop", _PS + "DelayBeforeShutdown", "-1"),
    cmd("beeper.enable", _PS + "AudibleAlarmControl", "2"),
    cmd("beeper.disable", _PS + "AudibleAlarmControl", "1"),
    cmd("beeper.mute", _PS + "AudibleAlarmControl", "3"),
]


class GenericSubdriver(Subdriver):
    """Standard paths only, for devices whose descriptor is a Power Device UPS."""

    def claim(self, dev, options):
        return bool(getattr(dev, "power_device", False))


GENERIC = GenericSubdriver("Generic HID Power Device 0.1", {}, (), GENERIC_TABLE)

# Order matters: the first subdriver that claims a device handles it.
SUBDRIVERS = (MGE, APC, CPS, TRIPPLITE, GENERIC)


def select(dev, options):
    """The subdriver for `dev`: ``subdriver=`` from ups.conf first, else by claim."""
    wanted = options.get("subdriver")
    if wanted:
        for sub in SUBDRIVERS:
            if sub.name == wanted:
                return sub
        w = wanted.lower()
        for sub in SUBDRIVERS:
            if sub.name.lower().startswith(w) or w in sub.name.lower():
                return sub
        return None
    for sub in SUBDRIVERS:
        if sub.claim(dev, options):
            return sub
    return None


__all__ = ["Subdriver", "SUBDRIVERS", "select", "APC", "CPS", "MGE", "TRIPPLITE", "GENERIC"]
