"""The Megatec/Q1 protocol parser and its battery arithmetic, without I/O.

Replies come from NUT's own examples of the protocol and from the real
dumps in nut-ddl named where they are used.
"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nutapp.drivers import qx_protocol as qx

# NUT's example reply in the Megatec protocol description.
Q1_EXAMPLE = "(226.0 195.0 226.0 014 49.0 27.5 30.0 00001000"
# TS Shara XPro UPS Senoidal 1500VA (nut-ddl
# TS_Shara__XPro_UPS_Senoidal_1500VA__nutdrv_qx__2.8.0__01.dev), rebuilt
# from its upsc values: on line, line-interactive, beeper on.
Q1_TSSHARA = "(128.0 128.0 126.0 000 60.0 27.4 28.0 00001001"


def test_q1_fields_come_from_fixed_columns():
    r = qx.parse_q1(Q1_EXAMPLE)
    assert r.values == [
        ("input.voltage", "226.0"),
        ("input.voltage.fault", "195.0"),
        ("output.voltage", "226.0"),
        ("ups.load", "14"),
        ("input.frequency", "49.0"),
        ("battery.voltage", "27.50"),
        ("ups.temperature", "30.0"),
    ]
    assert r.bits == "00001000"
    assert r.get("battery.voltage") == 27.5
    assert r.skipped == []


def test_decode_strips_cr_and_refuses_binary():
    assert qx.decode((Q1_EXAMPLE + "\r").encode()) == Q1_EXAMPLE
    with pytest.raises(qx.QxError, match="empty"):
        qx.decode(b"\r")
    with pytest.raises(qx.QxError, match="non-ASCII byte 0xff"):
        qx.decode(b"(226.0\xff\r")
    with pytest.raises(qx.QxError, match="0x00"):
        qx.decode(b"\x00\x00\r")


@pytest.mark.parametrize("line, reason", [
    (Q1_EXAMPLE[:-1], "too short"),
    ("", "too short"),
    ("#" + Q1_EXAMPLE[1:], "starts with '#'"),
    (Q1_EXAMPLE[:1] + "1" + Q1_EXAMPLE[1:-1], "columns"),  # shifted by one byte
    (Q1_EXAMPLE[:-8] + "0000100x", "not 0/1"),
    (Q1_EXAMPLE[:-8] + "000010 0", "not 0/1"),
    (Q1_EXAMPLE.replace(" 30.0 ", " 30.0x"), "status bits not where expected"),
])
def test_q1_frame_errors_are_refused(line, reason):
    with pytest.raises(qx.QxError, match=reason):
        qx.parse_q1(line)


def test_q1_non_numeric_field_is_left_out_like_nut():
    line = Q1_EXAMPLE.replace(" 30.0 ", " --.- ")
    r = qx.parse_q1(line)
    names = [n for n, _ in r.values]
    assert "ups.temperature" not in names
    assert r.skipped == ["ups.temperature"]
    assert r.get("input.voltage") == 226.0
    assert qx.parse_q1(Q1_EXAMPLE.replace("27.5", "2.7.")).skipped == ["battery.voltage"]


def test_q1_longer_reply_is_accepted_as_nut_does():
    assert qx.parse_q1(Q1_EXAMPLE + " 1234").bits == "00001000"


def test_ratings_and_vendor():
    assert qx.parse_ratings("#220.0 000 024.0 50.0") == [
        ("input.voltage.nominal", "220"),
        ("input.current.nominal", "0.0"),
        ("battery.voltage.nominal", "24.0"),
        ("input.frequency.nominal", "50"),
    ]
    with pytest.raises(qx.QxError, match="too short"):
        qx.parse_ratings("#220.0 000 024.0 50.")
    with pytest.raises(qx.QxError, match="starts with"):
        qx.parse_ratings("(220.0 000 024.0 50.0")

    assert qx.parse_vendor("#TS -222  240711 Senoid  15 V010203057") == [
        ("device.mfr", "TS -222  240711"),
        ("device.model", "Senoid  15"),
        ("ups.firmware", "V010203057"),
    ]
    # Blank fields are not values; a one byte shorter reply still reads.
    assert qx.parse_vendor("#                           VT12046Q ") == [
        ("ups.firmware", "VT12046Q")]
    with pytest.raises(qx.QxError, match="too short"):
        qx.parse_vendor("#ACME")


@pytest.mark.parametrize("bits, vi, vo, words, alarms", [
    ("00000000", 230, 230, ["OL"], []),
    ("10000000", 0, 230, ["OB"], []),
    ("11000000", 0, 230, ["OB", "LB"], []),
    ("00100000", 230, 200, ["OL", "TRIM"], []),
    ("00100000", 200, 230, ["OL", "BOOST"], []),
    ("00100000", 230, 231, ["OL", "BYPASS"], []),
    ("00100000", 230, 100, ["OL"], []),   # output too low to say
    ("00100000", 100, 230, ["OL"], []),   # output too high to say
    ("00000100", 230, 230, ["OL", "CAL"], []),
    ("00000010", 230, 230, ["OL", "FSD"], ["Shutdown imminent!"]),
    ("00010010", 230, 230, ["OL", "FSD"], ["UPS selftest failed!", "Shutdown imminent!"]),
    ("11100110", 200, 230, ["OB", "LB", "BOOST", "CAL", "FSD"], ["Shutdown imminent!"]),
])
def test_status_bits_follow_nut(bits, vi, vo, words, alarms):
    st = qx.interpret_bits(bits, vi, vo)
    assert st.words == words
    assert st.alarms == alarms


def test_type_beeper_and_ignoresab():
    st = qx.interpret_bits("00001001", 230, 230)
    assert (st.ups_type, st.beeper) == ("offline / line interactive", "enabled")
    st = qx.interpret_bits("00000010", 230, 230, ignoresab=True)
    assert (st.words, st.alarms, st.ups_type, st.beeper) == (["OL"], [], "online", "disabled")


def test_voltage_limits_and_charge():
    low, high = qx.guess_voltage_limits(24.0)
    # The values every nutdrv_qx dump with a 24 V battery shows.
    assert ("%.2f %.2f" % (low, high)) == "20.80 26.00"
    assert qx.charge_from_voltage(27.4, low, high) == 100
    assert qx.charge_from_voltage(19.0, low, high) == 0
    assert round(qx.charge_from_voltage(23.4, low, high)) == 50
    assert qx.charge_from_voltage(23.4, None, high) is None
    assert qx.charge_from_voltage(23.4, 26.0, 20.8) is None


@pytest.mark.parametrize("volt, nominal, packs", [
    (27.4, 24.0, 1),
    (2.27, 24.0, 12),     # NUT's blazer test reply: one cell of a 24 V battery
    (13.6, 12.0, 1),
    (13.6, 24.0, 2),
    (54.6, 48.0, 1),
    (6.8, 12.0, 2),
    (26.0, 12.0, 0.5),    # reports twice the voltage
    (100.0, 12.0, None),
    (None, 24.0, None),
])
def test_detect_packs(volt, nominal, packs):
    assert qx.detect_packs(volt, nominal) == packs


@pytest.mark.parametrize("runtimecal, idleload, load, runtime", [
    # TS Shara XPro 1500VA (nut-ddl, nutdrv_qx 2.8.0): battery.runtime 9600.
    ("480,100,960,50", 5, 0, 9600),
    # Fideltronik INIGO Viper 1200 (nut-ddl, nutdrv_qx 2.7.3.1): 600.
    ("60,100,900,21", 10, 0, 600),
])
def test_runtime_estimate_matches_real_dumps(runtimecal, idleload, load, runtime):
    est = qx.RuntimeEstimator(qx.RuntimeCal(runtimecal), 100, 28800, idleload)
    charge, got = est.step(True, 0, load)
    assert "%.0f" % charge == "100"
    assert "%.0f" % got == str(runtime)


def test_runtime_estimate_drains_on_battery_and_recharges():
    cal = qx.RuntimeCal("240,100,720,50")
    assert math.isclose(cal.exponent, math.log(3) / math.log(2))
    assert math.isclose(cal.nominal, 240)
    est = qx.RuntimeEstimator(cal, 100, chargetime=2400, idleload=10)
    est.step(False, 0, 100)           # learn the load: full load drains 1 s per s
    charge, runtime = est.step(False, 60, 100)
    assert (round(charge), round(runtime)) == (75, 180)
    charge, _ = est.step(True, 600, 100)   # a quarter of chargetime back on line
    assert round(charge) == 100
    # A voltage that says less pulls the estimate down.
    charge, _ = est.step(True, 0, 100, voltage_charge=40)
    assert round(charge) == 40


@pytest.mark.parametrize("text, reason", [
    ("240,100,720", "four values"),
    ("a,b,c,d", "numbers"),
    ("720,100,240,50", "runtimes"),
    ("240,50,720,100", "loads"),
    ("240,150,720,50", "loads"),
    ("240,100,720,0", "loads"),
])
def test_runtimecal_errors(text, reason):
    with pytest.raises(ValueError, match=reason):
        qx.RuntimeCal(text)


@pytest.mark.parametrize("name, param, off, on, minutes, text", [
    ("beeper.toggle", None, 30, 180, False, "Q\r"),
    ("load.off", None, 30, 180, False, "S00R0000\r"),
    ("load.on", None, 30, 180, False, "C\r"),
    ("shutdown.stop", None, 30, 180, False, "C\r"),
    ("test.battery.start.quick", None, 30, 180, False, "T\r"),
    ("test.battery.start.deep", None, 30, 180, False, "TL\r"),
    ("test.battery.stop", None, 30, 180, False, "CT\r"),
    ("shutdown.return", None, 30, 180, False, "S.5R0003\r"),
    ("shutdown.return", None, 120, 300, False, "S02R0005\r"),
    ("shutdown.return", None, 18, 0, False, "S.3\r"),
    ("shutdown.return", None, 600, 59, False, "S10\r"),
    ("shutdown.stayoff", None, 30, 180, False, "S.5R0000\r"),
    ("shutdown.stayoff", None, 300, 180, False, "S05R0000\r"),
    ("test.battery.start", None, 30, 180, False, "T10\r"),
    ("test.battery.start", "240", 30, 180, False, "T04\r"),
    ("test.battery.start", "4", 30, 180, True, "T04\r"),
    ("test.battery.start", None, 30, 180, True, "T10\r"),
])
def test_command_text(name, param, off, on, minutes, text):
    assert qx.command_text(name, param, off, on, minutes) == text


def test_command_errors():
    with pytest.raises(KeyError):
        qx.command_text("outlet.1.load.off")
    for param, minutes in (("30", False), ("6000", False), ("0", True), ("100", True),
                           ("ten", False)):
        with pytest.raises(ValueError):
            qx.command_text("test.battery.start", param, test_minutes=minutes)
    assert set(qx.COMMANDS) >= {"beeper.toggle", "shutdown.return", "test.battery.start"}


def test_command_replies_and_delays():
    assert qx.command_accepted("")
    assert qx.command_accepted("ACK\r")
    assert qx.command_accepted("(ACK")
    assert not qx.command_accepted("Q")          # echoed back: refused
    assert not qx.command_accepted("UPS No Ack")  # Fideltronik Viper's answer
    assert qx.truncate_delay("ups.delay.start", 200) == 180
    assert qx.truncate_delay("ups.delay.shutdown", 59) == 54
    assert qx.truncate_delay("ups.delay.shutdown", 119) == 60
    with pytest.raises(ValueError, match="range"):
        qx.truncate_delay("ups.delay.shutdown", 6)
    with pytest.raises(ValueError, match="range"):
        qx.truncate_delay("ups.delay.start", 600000)


# -- whatever the line carries, the parser answers or refuses cleanly ------


def _parse_any(raw):
    try:
        line = qx.decode(raw)
    except qx.QxError:
        return
    for parse in (qx.parse_q1, qx.parse_ratings, qx.parse_vendor):
        try:
            parse(line)
        except qx.QxError:
            pass


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_random_bytes_never_crash_the_parsers(raw):
    _parse_any(raw)


@settings(max_examples=500)
@given(st.lists(st.sampled_from("0123456789. ()#-x\x00"), min_size=40, max_size=50))
def test_near_miss_q1_replies_never_crash(chars):
    # Mostly the right alphabet and length: the interesting corner.
    line = "(" + "".join(chars)
    try:
        r = qx.parse_q1(line)
    except qx.QxError:
        return
    status = qx.interpret_bits(r.bits, r.get("input.voltage"), r.get("output.voltage"))
    assert status.words[0] in ("OL", "OB")
    for name, value in r.values:
        float(value)
