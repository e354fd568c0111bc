"""nutdrv_qx / blazer_ser against a simulated Megatec UPS on a pty.

The only fake is the far end of the serial line (`megatec_sim`); the
driver opens the pty through a symlink with pyserial as it would open a
real port.
"""

import asyncio
import termios

import pytest

from megatec_sim import MegatecSim
from nutapp.core.dstate import DriverState
from nutapp.drivers import load_driver_class
from nutapp.drivers.base import (
    CommError,
    DriverError,
    STAT_FAILED,
    STAT_HANDLED,
    STAT_INVALID,
    STAT_UNKNOWN,
)
from nutapp.drivers.nutdrv_qx import MAXTRIES, BlazerSer, NutdrvQx, SerialLink

ON_BATTERY_LOW = "(000.0 128.0 120.0 035 60.0 22.1 29.0 11001001"


class QuickLink(SerialLink):
    # A simulator answers at once; waiting a second for silence only slows
    # the tests down.
    timeout = 0.3
    settle = 0


@pytest.fixture
def sim(tmp_path):
    s = MegatecSim(str(tmp_path / "ttyUPS"))
    yield s
    if s._master is not None:
        s.unplug()


def run(coro):
    return asyncio.run(coro)


def make(sim, cls=NutdrvQx, **options):
    opts = {"port": sim.link_path, "driver": cls.name}
    opts.update(options)
    drv = cls("myups", opts, DriverState())
    drv.link_class = QuickLink
    return drv


def info(drv, name):
    return drv.dstate.getinfo(name)


async def opened(drv):
    await drv.open()
    return drv


def test_registered_under_both_names():
    assert load_driver_class("nutdrv_qx") is NutdrvQx
    assert issubclass(load_driver_class("blazer_ser"), NutdrvQx)


def test_open_reads_what_the_real_unit_reported(sim):
    drv = make(sim)

    async def go():
        await drv.open()
        await drv.update()
        await drv.close()

    run(go())
    # Values as in the TS Shara dump (nut-ddl), the source of the simulator.
    expected = {
        "battery.charge": "100",
        "battery.voltage": "27.40",
        "battery.voltage.high": "26.00",
        "battery.voltage.low": "20.80",
        "battery.voltage.nominal": "24.0",
        "device.mfr": "TS -222  240711",
        "device.model": "Senoid  15",
        "input.current.nominal": "100.0",
        "input.frequency": "60.0",
        "input.frequency.nominal": "60",
        "input.voltage": "128.0",
        "input.voltage.fault": "128.0",
        "output.voltage": "126.0",
        "ups.beeper.status": "enabled",
        "ups.delay.shutdown": "30",
        "ups.delay.start": "180",
        "ups.firmware": "V010203057",
        "ups.load": "0",
        "ups.status": "OL",
        "ups.temperature": "28.0",
        "ups.type": "offline / line interactive",
    }
    got = {k: info(drv, k) for k in expected}
    assert got == expected
    assert info(drv, "input.voltage.nominal") is None  # not a number on this unit
    state = drv.dstate.state
    assert sorted(state.sorted_cmds()) == sorted([
        "beeper.toggle", "load.off", "load.on", "shutdown.return", "shutdown.stayoff",
        "shutdown.stop", "test.battery.start", "test.battery.start.deep",
        "test.battery.start.quick", "test.battery.stop"])
    assert "DUMPDONE" in drv.dstate.dump_lines()
    dump = "\n".join(drv.dstate.dump_lines())
    assert "ADDRANGE ups.delay.shutdown 12 600" in dump
    assert "ADDRANGE ups.delay.start 0 599940" in dump
    assert sim.commands()[:3] == ["Q1", "F", "I"]


def test_line_settings_are_2400_8n1(sim):
    # Read back from the tty itself: what the driver set is what a UPS sees.
    async def go():
        drv = await opened(make(sim))
        attrs = termios.tcgetattr(sim._slave)
        await drv.close()
        return attrs

    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = run(go())
    assert (ispeed, ospeed) == (termios.B2400, termios.B2400)
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & (termios.PARENB | termios.CSTOPB)
    assert not lflag & (termios.ICANON | termios.ECHO)  # raw: the CR ends a reply
    assert not iflag & (termios.ICRNL | termios.IXON)


def test_cablepower_sets_dtr_and_rts(sim):
    async def lines(**opts):
        drv = await opened(make(sim, **opts))
        port = drv.link.port
        result = (port.dtr, port.rts)
        await drv.close()
        return result

    assert run(lines()) == (True, False)
    assert run(lines(cablepower="reverse")) == (False, True)
    assert run(lines(cablepower="none")) == (False, False)
    with pytest.raises(DriverError, match="cablepower"):
        run(lines(cablepower="sideways"))


def test_status_follows_the_bits(sim):
    async def go():
        drv = await opened(make(sim))
        sim.set(q1=ON_BATTERY_LOW)
        await drv.update()
        low = (info(drv, "ups.status"), info(drv, "battery.charge"), info(drv, "ups.load"))
        sim.set(q1="(128.0 128.0 126.0 000 60.0 27.4 28.0 00010111")
        await drv.update()
        failed = (info(drv, "ups.status"), info(drv, "ups.alarm"), info(drv, "ups.type"),
                  info(drv, "ups.beeper.status"))
        sim.set(q1="(200.0 128.0 230.0 010 60.0 27.4 28.0 00101001")
        await drv.update()
        boost = (info(drv, "ups.status"), info(drv, "ups.alarm"))
        await drv.close()
        return low, failed, boost

    low, failed, boost = run(go())
    assert low == ("OB LB", "25", "35")  # 22.1 V between 20.8 and 26.0
    assert failed == ("ALARM OL CAL FSD", "UPS selftest failed! Shutdown imminent!",
                      "online", "enabled")
    assert boost == ("OL BOOST", None)


def test_ignoresab(sim):
    sim.set(q1="(128.0 128.0 126.0 000 60.0 27.4 28.0 00000011")

    async def go():
        drv = await opened(make(sim, ignoresab=""))
        await drv.close()
        return info(drv, "ups.status"), info(drv, "ups.alarm")

    assert run(go()) == ("OL", None)


def test_runtimecal_from_the_dump(sim):
    # The TS Shara dump ran with these options and reported runtime 9600.
    drv = make(sim, runtimecal="480,100,960,50", chargetime="28800", idleload="5")

    async def go():
        await drv.open()
        await drv.update()
        await drv.close()

    run(go())
    assert (info(drv, "battery.charge"), info(drv, "battery.runtime")) == ("100", "9600")


def test_runtime_estimate_survives_a_reconnect(sim):
    async def go():
        drv = await opened(make(sim, runtimecal="240,100,720,50"))
        first = info(drv, "battery.charge")
        sim.set(q1=ON_BATTERY_LOW)          # 22.1 V: the estimate drops to 25 %
        await drv.update()
        low = info(drv, "battery.charge")
        sim.unplug()
        with pytest.raises(CommError):
            await drv.update()
        await drv.close()
        sim.plug()                          # back on line, battery still low:
        await drv.open()                    # no fresh start from 27.4 V
        await drv.update()
        await drv.close()
        return first, low, info(drv, "battery.charge")

    assert run(go()) == ("100", "25", "25")


def test_runtimecal_errors_are_configuration_errors(sim):
    with pytest.raises(DriverError, match="four values"):
        run(make(sim, runtimecal="480,100").open())
    with pytest.raises(DriverError, match="no port"):
        run(NutdrvQx("myups", {}, DriverState()).open())
    with pytest.raises(DriverError, match="only megatec"):
        run(make(sim, protocol="voltronic").open())
    with pytest.raises(DriverError, match="offdelay"):
        run(make(sim, offdelay="5").open())


def test_one_cell_voltage_is_scaled_by_packs(sim):
    sim.set(q1="(230.0 230.0 230.0 010 50.0 2.27 30.0 00001000",
            ratings="#230.0 000 024.0 50.0")

    async def go(**opts):
        drv = await opened(make(sim, **opts))
        await drv.close()
        return info(drv, "battery.voltage"), info(drv, "battery.charge")

    assert run(go()) == ("2.27", "100")   # 12 packs: 27.24 V is full
    assert run(go(battery_voltage_reports_one_pack="")) == ("27.24", "100")


def test_garbage_is_retried_then_refused_without_crashing(sim):
    async def go():
        drv = await opened(make(sim))
        seen = []
        for junk in (b"\xff\xfe\x00garbage\r", b"(128.0 128.0\r", b"#NAK\r",
                     b"(128.0 128.0 126.0 000 60.0 27.4 28.0 0000100?\r"):
            sim.set(garbage=junk, received=[])
            with pytest.raises(CommError) as e:
                await drv.update()
            seen.append((str(e.value), sim.commands()))
        sim.set(garbage=None)
        await drv.update()
        await drv.close()
        return seen, info(drv, "ups.status")

    seen, status = run(go())
    reasons = [r for r, _ in seen]
    assert "non-ASCII" in reasons[0]
    assert "too short" in reasons[1]
    assert "too short" in reasons[2]
    assert "not 0/1" in reasons[3]
    assert all(cmds == ["Q1"] * MAXTRIES for _, cmds in seen)
    assert status == "OL"


def test_one_garbled_reply_is_absorbed_by_a_retry(sim):
    class Flaky(MegatecSim):
        garble = 1

        def answer(self, command):
            reply = MegatecSim.answer(self, command)
            if command == "Q1" and self.garble:
                self.garble -= 1
                return b"(12\x008.0\r"
            return reply

    sim.unplug()
    flaky = Flaky(sim.link_path)
    try:
        drv = make(flaky)

        async def go():
            await drv.open()
            await drv.close()

        run(go())
        assert info(drv, "ups.status") == "OL"
        assert flaky.commands()[:2] == ["Q1", "Q1"]
    finally:
        flaky.unplug()


def test_silent_ups_is_a_comm_error(sim):
    async def go():
        drv = await opened(make(sim))
        sim.set(mute=True)
        with pytest.raises(CommError, match="no reply to Q1"):
            await drv.update()
        sim.set(mute=False)
        await drv.update()
        await drv.close()
        return info(drv, "ups.status")

    assert run(go()) == "OL"
    # A unit that never answers cannot be opened either: the framework retries.
    sim.set(mute=True)
    with pytest.raises(CommError, match="no reply"):
        run(make(sim).open())


def test_pulled_cable_then_recovery(sim):
    async def go():
        drv = await opened(make(sim))
        sim.unplug()
        with pytest.raises(CommError):
            await drv.update()
        await drv.close()
        with pytest.raises(CommError, match="cannot open"):
            await drv.open()
        sim.plug()
        sim.set(q1=ON_BATTERY_LOW)
        await drv.open()
        await drv.update()
        await drv.close()
        return info(drv, "ups.status")

    assert run(go()) == "OB LB"


def test_instant_commands_send_nut_strings(sim):
    async def go():
        drv = await opened(make(sim))
        results = []
        for cmd, param in (("beeper.toggle", None), ("test.battery.start.quick", None),
                           ("test.battery.start.deep", None), ("test.battery.stop", None),
                           ("test.battery.start", "240"), ("shutdown.return", None),
                           ("shutdown.stayoff", None), ("shutdown.stop", None),
                           ("load.off", None), ("load.on", None)):
            sim.set(received=[])
            results.append((cmd, await drv.instcmd(cmd, param), sim.commands()))
        await drv.close()
        return results

    assert run(go()) == [
        ("beeper.toggle", STAT_HANDLED, ["Q"]),
        ("test.battery.start.quick", STAT_HANDLED, ["T"]),
        ("test.battery.start.deep", STAT_HANDLED, ["TL"]),
        ("test.battery.stop", STAT_HANDLED, ["CT"]),
        ("test.battery.start", STAT_HANDLED, ["T04"]),
        ("shutdown.return", STAT_HANDLED, ["S.5R0003"]),
        ("shutdown.stayoff", STAT_HANDLED, ["S.5R0000"]),
        ("shutdown.stop", STAT_HANDLED, ["C"]),
        ("load.off", STAT_HANDLED, ["S00R0000"]),
        ("load.on", STAT_HANDLED, ["C"]),
    ]


def test_refused_unknown_and_invalid_commands(sim):
    sim.set(refuse={"Q"})

    async def go():
        drv = await opened(make(sim))
        sim.set(received=[])
        out = (await drv.instcmd("beeper.toggle"),
               await drv.instcmd("outlet.1.load.off"),
               await drv.instcmd("test.battery.start", "30"),
               await drv.instcmd("test.battery.start", "soon"))
        sent = sim.commands()
        sim.unplug()
        out += (await drv.instcmd("load.on"),)
        await drv.close()
        return out, sent

    out, sent = run(go())
    assert out == (STAT_FAILED, STAT_UNKNOWN, STAT_INVALID, STAT_INVALID, STAT_FAILED)
    assert sent == ["Q"]  # nothing goes out for a command that is not valid


def test_delays_are_writable_and_used_by_shutdown(sim):
    async def go():
        drv = await opened(make(sim, ondelay="300", offdelay="120"))
        before = (info(drv, "ups.delay.start"), info(drv, "ups.delay.shutdown"))
        out = [await drv.setvar("ups.delay.shutdown", "59"),
               await drv.setvar("ups.delay.start", "125"),
               await drv.setvar("ups.delay.shutdown", "5"),
               await drv.setvar("ups.delay.start", "later"),
               await drv.setvar("ups.load", "1")]
        after = (info(drv, "ups.delay.start"), info(drv, "ups.delay.shutdown"))
        sim.set(received=[])
        await drv.instcmd("shutdown.return")
        await drv.close()
        return before, out, after, sim.commands()

    before, out, after, sent = run(go())
    assert before == ("300", "120")
    assert out == [STAT_HANDLED, STAT_HANDLED, STAT_INVALID, STAT_INVALID, STAT_UNKNOWN]
    assert after == ("120", "54")
    assert sent == ["S.9R0002"]


def test_blazer_ser_conventions(sim):
    async def go():
        drv = await opened(make(sim, cls=BlazerSer, ondelay="2"))
        sim.set(received=[])
        rc = await drv.instcmd("test.battery.start", "4")
        sent = sim.commands()
        rw = await drv.setvar("ups.delay.start", "60")
        await drv.close()
        return drv, rc, sent, rw

    drv, rc, sent, rw = run(go())
    assert (rc, sent, rw) == (STAT_HANDLED, ["T04"], STAT_UNKNOWN)
    assert info(drv, "ups.delay.start") == "120"
    assert (info(drv, "ups.mfr"), info(drv, "ups.model")) == ("TS -222  240711", "Senoid  15")


def test_norating_novendor_skip_the_queries(sim):
    async def go():
        drv = await opened(make(sim, norating="", novendor=""))
        await drv.close()
        return drv

    drv = run(go())
    assert sim.commands() == ["Q1"]
    assert info(drv, "device.mfr") is None
    assert info(drv, "battery.charge") is None  # no nominal voltage, no guess
