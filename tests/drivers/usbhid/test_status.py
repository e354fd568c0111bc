"""ups.status from HID status bits, with usbhid-ups's rules and options."""

import pytest

from nutapp.drivers.usbhid.mapping import StatusBits, StatusOptions


def status(bits, charge="100", options=None, now=1000, log=None, sb=None):
    sb = sb or StatusBits(StatusOptions(options or {}))
    for b in bits:
        sb.process(b)
    return " ".join(sb.words(charge, now, log if log is not None else []))


@pytest.mark.parametrize("bits,charge,expected", [
    (["online", "!dischrg", "!chrg"], "100", "OL"),
    (["offline", "dischrg"], "80", "OB DISCHRG"),
    (["online", "chrg"], "80", "OL CHRG"),
    # charging but full: CHRG only while 0 < charge < 100 when "fully charged" is not reported
    (["online", "chrg"], "100", "OL"),
    (["online", "chrg", "notfullycharged"], "100", "OL CHRG"),
    (["online", "chrg", "fullycharged"], "50", "OL"),
    # no power state reported: OB only if discharging
    (["dischrg"], "70", "OB DISCHRG"),
    (["chrg"], "70", "CHRG"),
    (["offline", "dischrg", "lowbatt"], "9", "OB DISCHRG LB"),
    (["offline", "timelimitexp"], "30", "OB LB"),
    (["online", "shutdownimm"], "30", "OL LB"),
    (["online", "replacebatt"], "100", "OL RB"),
    (["online", "nobattery"], "100", "OL RB"),
    (["online", "overload", "trim"], "100", "OL OVER TRIM"),
    (["online", "boost", "bypassman"], "100", "OL BOOST BYPASS"),
    (["online", "off"], "100", "OL OFF"),
    (["online", "cal", "dischrg"], "90", "CAL OL DISCHRG"),
    (["offline", "dischrg", "depleted"], "0", "OB"),
])
def test_status_words(bits, charge, expected):
    assert status(bits, charge) == expected


def test_online_clears_offline_and_back():
    sb = StatusBits()
    assert status(["offline", "dischrg"], sb=sb) == "OB DISCHRG"
    assert status(["online", "!dischrg"], sb=sb) == "OL"


@pytest.mark.parametrize("option", ["onlinedischarge_onbattery", "onlinedischarge_battery",
                                    "onlinedischarge"])
def test_online_discharging_as_on_battery(option):
    # CyberPower UT series report mains loss as OL+DISCHRG
    assert status(["online", "dischrg"], "90", {option: "1"}) == "OB DISCHRG"


def test_online_discharging_as_calibration():
    assert status(["online", "dischrg"], "90", {"onlinedischarge_calibration": "1"}) == \
        "CAL DISCHRG"


def test_online_discharging_stays_online_and_warns_when_charge_drops():
    sb = StatusBits(StatusOptions({}))
    log = []
    assert status(["online", "dischrg"], "100", sb=sb, log=log) == "OL DISCHRG"
    assert log == []  # at full charge the UPS may just be letting its battery hover
    assert status([], "97", sb=sb, log=log, now=1001) == "OL DISCHRG"
    assert len(log) == 1 and "battery.charge 97" in log[0]
    status([], "97", sb=sb, log=log, now=1002)
    assert len(log) == 1  # same charge: not repeated
    status([], "95", sb=sb, log=log, now=1003)
    assert len(log) == 2


def test_online_discharging_log_throttle_by_time():
    sb = StatusBits(StatusOptions({"onlinedischarge_log_throttle_sec": "60",
                                   "onlinedischarge_log_throttle_hovercharge": "90"}))
    log = []
    status(["online", "dischrg"], "85", sb=sb, log=log, now=1000)
    assert len(log) == 1
    status([], "85", sb=sb, log=log, now=1030)
    assert len(log) == 1
    status([], "85", sb=sb, log=log, now=1061)
    assert len(log) == 2
    status([], "95", sb=sb, log=log, now=1062)  # above the hover level: no news
    assert len(log) == 2


def test_lb_rb_held_back_while_calibrating_online():
    sb = StatusBits(StatusOptions({"lbrb_log_delay_sec": "3",
                                   "onlinedischarge_calibration": "1"}))
    bits = ["online", "dischrg", "lowbatt", "replacebatt"]
    assert status(bits, "50", sb=sb, now=100) == "CAL DISCHRG"
    assert status([], "50", sb=sb, now=102) == "CAL DISCHRG"
    assert status([], "50", sb=sb, now=104) == "CAL DISCHRG LB RB"
    sb.process("!lowbatt")
    sb.process("!replacebatt")
    assert status([], "50", sb=sb, now=105) == "CAL DISCHRG"
    # a real power failure is never held back
    assert status(["offline", "lowbatt"], "50", sb=sb, now=109) == "OB DISCHRG LB"


def test_lb_not_held_back_without_calibration_unless_asked():
    bits = ["online", "lowbatt"]
    assert status(bits, "50", {"lbrb_log_delay_sec": "3"}) == "OL LB"
    sb = StatusBits(StatusOptions({"lbrb_log_delay_sec": "3",
                                   "lbrb_log_delay_without_calibrating": "1"}))
    assert status(bits, "50", sb=sb, now=10) == "OL"


def test_alarms_and_transfer_reason():
    sb = StatusBits()
    for b in ("online", "replacebatt", "fanfail", "vrange"):
        sb.process(b)
    assert sb.alarms() == ["Replace battery!", "Fan failure!"]
    assert sb.transfer_reason() == "input voltage out of range"
    sb.process("!vrange")
    assert sb.transfer_reason() is None
