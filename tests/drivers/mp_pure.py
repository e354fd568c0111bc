"""Checks of the drivers' pure modules written for both interpreters.

qx_protocol, gpio_rules and hats must run under MicroPython as well as
CPython. These tests use only plain asserts, so the core's MicroPython
runner (tests/core/mprun.py) can run them, and pytest runs them through
test_pure_micropython.py.
"""

from nutapp.drivers import gpio_rules, hats
from nutapp.drivers import qx_protocol as qx

Q1 = "(128.0 128.0 126.0 000 60.0 27.4 28.0 00001001"


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return str(e)
    raise AssertionError("%s not raised" % exc.__name__)


def test_q1_reply():
    r = qx.parse_q1(qx.decode((Q1 + "\r").encode()))
    assert r.values[0] == ("input.voltage", "128.0")
    assert ("battery.voltage", "27.40") in r.values
    assert ("ups.load", "0") in r.values
    st = qx.interpret_bits(r.bits, r.get("input.voltage"), r.get("output.voltage"))
    assert st.words == ["OL"]
    assert st.ups_type == "offline / line interactive"
    assert st.beeper == "enabled"


def test_q1_garbage():
    assert "too short" in raises(qx.QxError, qx.parse_q1, Q1[:20])
    assert "starts with" in raises(qx.QxError, qx.parse_q1, "#" + Q1[1:])
    assert "0x00" in raises(qx.QxError, qx.decode, b"(1\x00\r")
    assert "not 0/1" in raises(qx.QxError, qx.parse_q1, Q1[:-1] + "x")


def test_ratings_vendor_and_bits():
    assert qx.parse_ratings("#230.0 000 024.0 50.0")[2] == ("battery.voltage.nominal", "24.0")
    assert qx.parse_vendor("#TS -222  240711 Senoid  15 V010203057")[2] == (
        "ups.firmware", "V010203057")
    st = qx.interpret_bits("11100110", 200.0, 230.0)
    assert st.words == ["OB", "LB", "BOOST", "CAL", "FSD"]
    assert st.alarms == ["Shutdown imminent!"]


def test_battery_and_commands():
    low, high = qx.guess_voltage_limits(24.0)
    assert "%.2f %.2f" % (low, high) == "20.80 26.00"
    assert qx.detect_packs(2.27, 24.0) == 12
    est = qx.RuntimeEstimator(qx.RuntimeCal("480,100,960,50"), 100, 28800, 5)
    charge, runtime = est.step(True, 0, 0.0)
    assert "%.0f %.0f" % (charge, runtime) == "100 9600"
    assert qx.command_text("shutdown.return", None, 30, 180) == "S.5R0003\r"
    assert qx.command_text("test.battery.start", "240") == "T04\r"
    raises(ValueError, qx.command_text, "test.battery.start", "30")
    raises(ValueError, qx.RuntimeCal, "1,2")


def test_gpio_rules():
    rules = gpio_rules.parse("OL=^0;OB=0;LB=3;RB=1;DISCHRG=0&^6;BYPASS=6;")
    assert rules.lines() == [0, 3, 1, 6]
    st = gpio_rules.ups_state(rules, {0: 1, 3: 1, 1: 0, 6: 0}, 10)
    assert st.words == ["OB", "LB", "DISCHRG"]
    assert (st.charger, st.charge) == ("discharging", "10")
    assert gpio_rules.parse("T=1|2&3;").true_states({1: 0, 2: 1, 3: 1}) == ["T"]
    msg = raises(gpio_rules.RulesError, gpio_rules.parse, "OL=^0;OB=0x;")
    assert "position 10" in msg


def test_fuel_gauge_math():
    assert hats.battery_values(hats.word(b"\xb5\x20"), hats.word(b"\x23\x0f")) == ("3.62", "35")
    assert hats.is_low(19.5, 3.7, 20)
    assert hats.preset("X728")["i2c_address"] == "0x36"
