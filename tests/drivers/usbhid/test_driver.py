"""The usbhid-ups driver on the fake pyusb bus, replaying real UPSes."""

import asyncio
import os

import pytest

from nutapp.core.dstate import DriverState
from nutapp.drivers.base import (CommError, DriverError, STAT_HANDLED, STAT_INVALID,
                                 STAT_UNKNOWN, STAT_CONVERSION_FAILED)
from nutapp.drivers.usbhid.driver import UsbHidUps

from .fakeusb import FakeUps, FakeBus, DATA

APC = "apc-back-ups-es-850g2.ups"
CPS = "cyberpower-cp1500pfclcd.ups"
EATON = "eaton-5sc-750.ups"

# A test never waits this long: wait() returning means the driver woke itself.
NEVER = 3600
GUARD = 60


def make(usb_bus, **options):
    opts = {"port": "auto"}
    opts.update(options)
    cls = type("FakeBusUsbHidUps", (UsbHidUps,), {"backend": usb_bus})
    dstate = DriverState()
    return cls("ups", opts, dstate), dstate


def values(dstate):
    return {v.name: v.value for v in dstate.state.sorted_vars()}


def commands(dstate):
    return set(dstate.state.sorted_cmds())


async def started(usb_bus, **options):
    d, ds = make(usb_bus, **options)
    await d.open()
    await d.update()
    return d, ds


def read_ddl(name):
    out = {}
    commands = set()
    for line in open(os.path.join(DATA, "ddl", name)):
        line = line.rstrip("\n")
        if line.startswith("# ") and " - " in line and "." in line.split()[1]:
            commands.add(line.split()[1])
        if not line or line.startswith("#") or ": " not in line:
            continue
        k, _, v = line.partition(": ")
        out[k] = v
    return out, commands


# -- the same model's nut-ddl dump -------------------------------------------------

DDL = {
    APC: ("APC__Back-UPS_ES_850G2__usbhid-ups__2.8.0__01.dev",
          # properties of the model: same on every unit
          ["battery.charge", "battery.charge.low", "battery.charge.warning",
           "battery.runtime.low", "battery.type", "battery.voltage.nominal", "device.mfr",
           "device.model", "device.type", "input.sensitivity", "input.transfer.high",
           "input.transfer.low", "input.voltage.nominal", "ups.beeper.status",
           "ups.delay.shutdown", "ups.firmware", "ups.firmware.aux", "ups.mfr", "ups.model",
           "ups.productid", "ups.realpower.nominal", "ups.status", "ups.test.result",
           "ups.timer.reboot", "ups.timer.shutdown", "ups.vendorid"],
          set(), set()),
    CPS: ("Cyber_Power_Systems__CP1500PFCLCD__usbhid-ups__2.7.4__01.dev",
          ["battery.charge", "battery.charge.low", "battery.charge.warning", "battery.mfr.date",
           "battery.runtime.low", "battery.type", "battery.voltage", "battery.voltage.nominal",
           "device.mfr", "device.model", "device.serial", "input.transfer.high",
           "input.transfer.low", "input.voltage.nominal", "ups.beeper.status", "ups.mfr",
           "ups.model", "ups.productid", "ups.realpower.nominal", "ups.status",
           "ups.timer.shutdown", "ups.timer.start", "ups.vendorid"],
          # NUT 2.7.4 had not yet mapped these
          {"battery.status", "input.sensitivity"}, set()),
    EATON: ("Eaton__5SC_750__usbhid-ups__2.7.2__01.dev",
            ["battery.capacity", "battery.charge", "battery.charge.low",
             "battery.charge.restart", "battery.protection", "battery.type", "device.mfr",
             "device.model", "device.serial", "input.frequency.nominal",
             "input.voltage.nominal", "output.frequency.nominal", "ups.beeper.status",
             "ups.delay.shutdown", "ups.delay.start", "ups.mfr", "ups.model",
             "ups.power.nominal", "ups.productid", "ups.realpower.nominal", "ups.start.auto",
             "ups.start.reboot", "ups.test.interval", "ups.test.result", "ups.timer.shutdown",
             "ups.timer.start", "ups.type", "ups.vendorid", "battery.energysave",
             "outlet.1.status", "outlet.desc", "outlet.id", "outlet.switchable",
             "ups.load.high", "ups.shutdown", "ups.start.battery"],
            set(), set()),
}


@pytest.mark.parametrize("name", [APC, CPS, EATON])
def test_variables_match_the_models_ddl_dump(name):
    dump, same, newer, not_mapped = DDL[name]
    ddl, _ = read_ddl(dump)

    async def go():
        d, ds = await started(FakeBus(FakeUps(name)))
        await d.close()
        return values(ds)

    got = asyncio.run(go())
    want = set(k for k in ddl if not k.startswith("driver.")) - not_mapped
    have = set(k for k in got if not k.startswith("driver."))
    assert have - want == newer
    assert want - have == set()
    for var in same:
        assert got[var] == ddl[var], var


def test_apc_commands_match_the_ddl_dump():
    _, ddl_cmds = read_ddl(DDL[APC][0])

    async def go():
        d, ds = await started(FakeBus(FakeUps(APC)))
        await d.close()
        return commands(ds)

    assert ddl_cmds and asyncio.run(go()) == ddl_cmds


def test_kernel_driver_is_detached_and_interface_claimed():
    ups = FakeUps(APC)

    async def go():
        d, ds = await started(FakeBus(ups))
        assert not ups.kernel_driver and ups.claimed == {0}
        await d.close()

    asyncio.run(go())


# -- finding the device -------------------------------------------------------------

@pytest.mark.parametrize("options,found", [
    ({"vendorid": "051d"}, APC),
    ({"vendorid": "051D", "productid": "0002"}, APC),
    ({"vendorid": "0764"}, CPS),
    ({"product": ".*ES 850.*"}, APC),
    ({"product": "Back"}, None),  # the whole string must match
    ({"vendor": "cps"}, CPS),  # case-insensitive
    ({"serial": "5B2250T99999"}, APC),  # surrounding blanks trimmed
    ({"bus": "001", "device": "007"}, CPS),
    ({"device": "00[5-6]"}, APC),
    ({"vendorid": "0463"}, None),
])
def test_matching_options(options, found):
    usb_bus = FakeBus(FakeUps(APC, address=5), FakeUps(CPS, address=7))

    async def go():
        d, ds = make(usb_bus, **options)
        try:
            await d.open()
        except CommError:
            return None
        await d.close()
        return ds.getinfo("ups.model")

    model = asyncio.run(go())
    expect = {APC: "Back-UPS ES 850G2", CPS: "CP1500PFCLCD", None: None}[found]
    assert model == expect


def test_bad_regular_expression_is_a_configuration_error():
    d, _ = make(FakeBus(FakeUps(APC)), product="Back-UPS (")
    with pytest.raises(DriverError):
        asyncio.run(d.open())


# -- commands and settings -------------------------------------------------------------

@pytest.mark.parametrize("cmd,param,written", [
    ("beeper.disable", None, "18 01"),
    ("beeper.off", None, "18 01"),  # the old name, as NUT maps it
    ("beeper.mute", None, "18 03"),
    ("test.battery.start.quick", None, "21 01"),
    ("test.battery.start.deep", None, "21 02"),
    ("test.battery.stop", None, "21 03"),
    ("load.off", None, "15 00 00"),
    ("load.off.delay", "30", "15 1e 00"),
    ("shutdown.stop", None, "15 ff ff"),
    ("shutdown.reboot", None, "40 0a"),
])
def test_apc_instant_commands_write_feature_reports(cmd, param, written):
    ups = FakeUps(APC)

    async def go():
        d, ds = await started(FakeBus(ups))
        status = await d.instcmd(cmd, param)
        await d.close()
        return status

    assert asyncio.run(go()) == STAT_HANDLED
    assert ups.sets == [bytes.fromhex(written)]


def test_unknown_command_writes_nothing():
    ups = FakeUps(APC)

    async def go():
        d, ds = await started(FakeBus(ups))
        status = await d.instcmd("load.on")  # no DelayBeforeStartup on this model
        await d.close()
        return status

    assert asyncio.run(go()) == STAT_INVALID
    assert ups.sets == []


def test_cyberpower_shutdown_return_in_minutes():
    # CPS counts its delays in minutes: ups.delay.start 120 s and
    # ups.delay.shutdown 60 s go out as 2 and 1.
    ups = FakeUps(CPS)

    async def go():
        d, ds = await started(FakeBus(ups))
        status = await d.instcmd("shutdown.return")
        await d.close()
        return status

    assert asyncio.run(go()) == STAT_HANDLED
    assert ups.sets == [bytes.fromhex("16 02 00"), bytes.fromhex("15 01 00")]


def test_settings_write_and_read_back():
    ups = FakeUps(APC)

    async def go():
        d, ds = await started(FakeBus(ups))
        assert await d.setvar("battery.charge.low", "20") == STAT_HANDLED
        assert await d.setvar("input.sensitivity", "high") == STAT_HANDLED
        assert await d.setvar("input.sensitivity", "extreme") == STAT_CONVERSION_FAILED
        assert await d.setvar("battery.charge", "50") == STAT_UNKNOWN  # read-only
        assert await d.setvar("no.such.var", "1") == STAT_UNKNOWN
        assert await d.setvar("ups.delay.shutdown", "45") == STAT_HANDLED  # driver-side
        await d.update()
        await d.close()
        return values(ds)

    got = asyncio.run(go())
    assert ups.sets == [bytes.fromhex("11 14"), bytes.fromhex("35 02")]
    assert got["battery.charge.low"] == "20"
    assert got["input.sensitivity"] == "high"
    assert got["ups.delay.shutdown"] == "45"


def test_writable_variables_are_flagged():
    async def go():
        d, ds = await started(FakeBus(FakeUps(APC)))
        await d.close()
        return ds

    ds = asyncio.run(go())
    lines = ds.dump_lines()
    assert "SETFLAGS battery.charge.low RW STRING" in lines
    assert "SETAUX battery.charge.low 10" in lines
    assert not any(line.startswith("SETFLAGS battery.charge ") for line in lines)


def test_ups_conf_settings_applied_at_start():
    async def go():
        d, ds = await started(FakeBus(FakeUps(CPS)), lowbatt="35", offdelay="120",
                              ondelay="180", pollfreq="20")
        await d.close()
        return values(ds)

    got = asyncio.run(go())
    assert got["battery.charge.low"] == "35"
    assert got["ups.delay.shutdown"] == "120"
    assert got["ups.delay.start"] == "180"
    assert got["driver.parameter.pollfreq"] == "20"


# -- events --------------------------------------------------------------------

ON_BATTERY = {
    # Charging 0, Discharging 1, ACPresent 0, BatteryPresent 1
    "16": "16 0a 00 00 00",
    "13": "13 00",
    "06": "06 00 01 08",
}


def test_interrupt_report_wakes_the_driver_and_status_goes_ob():
    ups = FakeUps(APC)

    async def go():
        # pollinterval 0: no buffered report outlives a poll, so the poll sees
        # every report the UPS changed along with its interrupt.
        d, ds = await started(FakeBus(ups), pollinterval="0")
        assert ds.getinfo("ups.status") == "OL"
        for report in ON_BATTERY.values():
            ups.set_report(report)
        ups.push_interrupt(ON_BATTERY["16"])
        await asyncio.wait_for(d.wait(NEVER), GUARD)
        await d.update()
        status = ds.getinfo("ups.status")
        await d.close()
        return status

    assert asyncio.run(go()) == "OB DISCHRG"


def test_input_report_alone_sets_status_bits():
    async def go():
        d, ds = await started(FakeBus(FakeUps(APC)), pollonly="1")
        assert d._reader is None  # pollonly: no interrupt reader
        known = d.engine.interrupt(bytes.fromhex(ON_BATTERY["16"]), 0)
        bits = set(d.engine.status.bits)
        unknown = d.engine.interrupt(bytes.fromhex("99 01"), 0)
        await d.close()
        return known, bits, unknown

    known, bits, unknown = asyncio.run(go())
    assert known and not unknown
    assert "dischrg" in bits and "offline" in bits and "online" not in bits


# -- unplug and replug --------------------------------------------------------------

def test_unplug_then_replug_at_a_new_address():
    ups = FakeUps(APC, address=5)
    other = FakeUps(CPS, address=6)
    bus = FakeBus(ups)

    async def go():
        # pollinterval 0: every poll reads the device, none is served from the buffer
        d, ds = await started(bus, pollinterval="0")
        assert d.info.device == "005"
        bus.unplug(ups)
        with pytest.raises(CommError):
            await d.update()
        await d.close()
        with pytest.raises(CommError):
            await d.open()  # nothing there
        bus.plug(other)
        with pytest.raises(CommError):
            await d.open()  # another UPS is not ours
        ups.set_report("0c 5a 10 02")  # it comes back at 90 %
        bus.plug(ups, address=9)
        await d.open()
        await d.update()
        got = (d.info.device, ds.getinfo("battery.charge"), ds.getinfo("ups.status"),
               ds.getinfo("ups.model"))
        await d.close()
        return got

    assert asyncio.run(go()) == ("009", "90", "OL", "Back-UPS ES 850G2")


def test_unplug_seen_by_the_interrupt_reader():
    ups = FakeUps(APC)
    bus = FakeBus(ups)

    async def go():
        d, ds = await started(bus)
        assert d._reader is not None
        bus.unplug(ups)
        await asyncio.wait_for(d.wait(NEVER), GUARD)
        with pytest.raises(CommError):
            await d.update()
        await d.close()

    asyncio.run(go())


@pytest.mark.parametrize("product,options,asked", [
    ("Back-UPS ES 850G2 FW:938.a2 .I USB FW:a2 ", {}, 3),  # id + 16 bits
    ("Back-UPS ES 850G2 FW:938.a2 .I USB FW:a2 ", {"maxreport": "1"}, 255),
    ("Back-UPS CS 650 FW:817.v4.I USB FW:v4", {}, 255),  # NUT's list of overrunning models
])
def test_report_buffer_size(product, options, asked):
    ups = FakeUps(APC)
    ups.strings[2] = product

    async def go():
        d, ds = await started(FakeBus(ups), **options)
        await d.close()

    asyncio.run(go())
    assert ups.asked[0x31] == asked  # UPS.Input.Voltage, 16 bits


TRIPPLITE = "tripplite-09ae-4003.ups"


def test_tripplite_values_and_its_logged_loss_of_mains():
    ups = FakeUps(TRIPPLITE)

    async def go():
        d, ds = await started(FakeBus(ups), pollinterval="0")
        before = values(ds)
        # the status report as the same log shows it later: ACPresent and all else 0
        ups.set_report("32 64 00 00")
        await d.update()
        after = ds.getinfo("ups.status")
        await d.close()
        return before, after

    before, after = asyncio.run(go())
    assert {k: before[k] for k in (
        "battery.charge", "battery.charge.low", "battery.runtime", "battery.voltage.nominal",
        "battery.temperature", "input.voltage.nominal", "input.frequency", "input.transfer.low",
        "input.transfer.high", "output.voltage", "ups.power.nominal", "ups.load",
        "ups.timer.shutdown", "ups.test.result", "ups.status")} == {
        "battery.charge": "100", "battery.charge.low": "25", "battery.runtime": "2311",
        "battery.voltage.nominal": "72.0", "battery.temperature": "23.9",
        "input.voltage.nominal": "120", "input.frequency": "60.0",
        "input.transfer.low": "65.0", "input.transfer.high": "138.0",
        "output.voltage": "120.0", "ups.power.nominal": "3000", "ups.load": "20",
        "ups.timer.shutdown": "-1", "ups.test.result": "Done and passed", "ups.status": "OL"}
    assert "battery.type" not in before  # its chemistry string was never logged
    assert after == "OB"


@pytest.mark.parametrize("bcd,requests", [
    (0x0100, [0x2200]),  # length from the interface's HID descriptor, index 0
    (0x0202, [0x2101, 0x2201]),  # asked for, at index 1, as NUT does for these units
])
def test_eaton_report_descriptor_index(bcd, requests):
    ups = FakeUps(EATON)
    ups.bcd = bcd

    async def go():
        d, ds = await started(FakeBus(ups))
        await d.close()
        return ds.getinfo("ups.model")

    assert asyncio.run(go()) == "Eaton 5SC 750"
    assert [w for w in ups.descriptor_requests if w >> 8 in (0x21, 0x22)] == requests


def test_busport_option_matches_the_hub_port():
    async def go(port):
        d, ds = make(FakeBus(FakeUps(APC)), busport=port)
        try:
            await d.open()
        except CommError:
            return False
        await d.close()
        return True

    assert asyncio.run(go("001"))  # the fake hangs every UPS on port 1
    assert not asyncio.run(go("002"))


def test_silent_interrupt_pipe_means_reconnect_when_tolerance_is_set():
    async def go(tolerance):
        d, ds = await started(FakeBus(FakeUps(APC)),
                              interrupt_pipe_no_events_tolerance=tolerance)
        try:
            for _ in range(3):
                await d.update()
        except CommError:
            return "reconnect"
        finally:
            await d.close()
        return "fine"

    assert asyncio.run(go("1")) == "reconnect"
    assert asyncio.run(go("-1")) == "fine"


def test_other_hid_devices_are_left_to_the_kernel():
    keyboard = FakeUps("not-a-ups.ups", address=3)
    bus = FakeBus(keyboard, FakeUps(APC, address=5))

    async def go():
        d, ds = await started(bus)
        await d.close()
        return ds.getinfo("ups.model")

    assert asyncio.run(go()) == "Back-UPS ES 850G2"
    # its strings were read, as NUT reads them to match; its interface not touched
    assert keyboard.kernel_driver
    assert [w for w in keyboard.descriptor_requests if w >> 8 != 0x03] == []


def test_a_device_named_in_ups_conf_that_is_no_ups_gets_its_driver_back():
    keyboard = FakeUps("not-a-ups.ups", address=3)

    async def go():
        d, ds = make(FakeBus(keyboard), vendorid="1234")
        with pytest.raises(CommError):
            await d.open()

    asyncio.run(go())
    assert 0x2200 in keyboard.descriptor_requests  # it was looked at
    assert keyboard.kernel_driver  # and handed back


def test_unknown_vendor_power_device_uses_the_generic_table():
    ups = FakeUps(APC)
    ups.vendorid, ups.productid = 0x1234, 0x0001

    async def go():
        d, ds = await started(FakeBus(ups), vendorid="1234")
        await d.close()
        return values(ds), commands(ds)

    got, cmds = asyncio.run(go())
    assert got["driver.version.data"].startswith("Generic HID Power Device")
    assert (got["battery.charge"], got["battery.runtime"], got["ups.status"]) == \
        ("100", "868", "OL")
    assert {"beeper.disable", "test.battery.start.quick", "load.off.delay"} <= cmds


def test_apc_values_follow_the_logged_reports():
    # what NUT's log decoded, through the APC table's formats
    async def go():
        d, ds = await started(FakeBus(FakeUps(APC)))
        await d.close()
        return values(ds)

    got = asyncio.run(go())
    assert {k: got[k] for k in ("input.voltage", "battery.voltage", "battery.runtime",
                                "ups.load", "battery.mfr.date", "battery.date",
                                "ups.mfr.date")} == {
        "input.voltage": "228.0", "battery.voltage": "13.4", "battery.runtime": "868",
        "ups.load": "34", "battery.mfr.date": "2021/03/02", "battery.date": "2001/09/25",
        "ups.mfr.date": "2021/03/02"}


def test_quick_and_full_updates():
    # every poll reads the status; the rest waits for pollfreq, or for a change
    # made through the driver
    ups = FakeUps(APC)

    async def go():
        d, ds = await started(FakeBus(ups), pollonly="1", pollfreq="30", pollinterval="0")
        t0 = d.engine.last_full
        ups.set_report("31 dc 00")  # input voltage 220
        ups.set_report("16 0c 01 00 00")  # NeedReplacement
        d.engine.update(t0 + 5)
        quick = (ds.getinfo("input.voltage"), ds.getinfo("ups.status"))
        d.engine.update(t0 + 31)
        full = (ds.getinfo("input.voltage"), ds.getinfo("ups.status"),
                ds.getinfo("ups.alarm"))
        ups.set_report("31 e6 00")  # 230
        await d.setvar("battery.charge.low", "15")
        d.engine.update(t0 + 32)  # a change was made: full update at once
        after_set = ds.getinfo("input.voltage")
        await d.close()
        return quick, full, after_set

    quick, full, after_set = asyncio.run(go())
    assert quick == ("228.0", "OL")  # NeedReplacement is not a quick-poll bit
    assert full == ("220.0", "ALARM OL RB", "Replace battery!")
    assert after_set == "230.0"


@pytest.mark.parametrize("product,delay", [
    ("Back-UPS BX1600MI", 3),
    ("Back-UPS BVK650M2", 3),
    ("Back-UPS BK650M2-CH", 3),
    ("Back-UPS ES 850G2 FW:938.a2 .I USB FW:a2 ", 0),
])
def test_lb_rb_delay_defaults_for_flapping_apc_models(product, delay):
    ups = FakeUps(APC)
    ups.strings[2] = product

    async def go():
        d, ds = await started(FakeBus(ups))
        got = d.engine.status.opts.lbrb_delay
        await d.close()
        return got

    assert asyncio.run(go()) == delay


def test_alarm_rows_and_status_alarms_add_up():
    ups = FakeUps(EATON)
    ups.set_report("03 00 01 00 00")  # EmergencyStop
    ups.set_report("02 00 01 00 00")  # NeedReplacement

    async def go():
        d, ds = await started(FakeBus(ups))
        await d.close()
        return ds.getinfo("ups.alarm"), ds.getinfo("ups.status")

    alarm, status = asyncio.run(go())
    assert alarm == "Emergency stop! Replace battery!"
    assert status == "ALARM OL RB"


def test_explore_logs_every_field_of_any_named_device(caplog):
    import logging

    async def go(**options):
        d, ds = make(FakeBus(FakeUps("not-a-ups.ups")), **options)
        try:
            await d.open()
        finally:
            await d.close()
        return ds

    with pytest.raises(DriverError):
        asyncio.run(go(explore="1"))  # vendorid is required with explore
    with caplog.at_level(logging.INFO, logger="nutapp.drivers.usbhid"):
        asyncio.run(go(explore="1", vendorid="1234"))
    # the keyboard's eight modifier keys, usages e0..e7 of page 7
    assert "Path: 00010006.000700e0, Type: Input, ReportID: 0x00, Offset: 0, Size: 1" \
        in caplog.text
    assert "Path: 00010006.000700e7, Type: Input, ReportID: 0x00, Offset: 7, Size: 1" \
        in caplog.text
