"""generic_gpio's rules language and the HAT fuel gauge arithmetic, without I/O.

Most cases restate the vectors of NUT's own generic_gpio unit test
(tests/generic_gpio_test.txt in NUT's source) as data.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nutapp.core.errors import ConfigError
from nutapp.drivers import gpio_rules, hats

CYBERSHIELD = "OL=^0;OB=0;LB=3;RB=1;DISCHRG=0&^6;BYPASS=6;"


def test_parse_the_documented_example():
    rules = gpio_rules.parse(CYBERSHIELD)
    assert rules.lines() == [0, 3, 1, 6]
    assert [r.state for r in rules.rules] == ["OL", "OB", "LB", "RB", "DISCHRG", "BYPASS"]
    assert str(rules) == CYBERSHIELD


@pytest.mark.parametrize("text", [
    "DISCHRG=0&^6;", "DISCHRG=0&^6|^2;", "OL=1;", "TSTAO=1&2|3;",
    # Allowances beyond NUT: blanks, and no ';' after the last rule.
    "OL=^0;OB=0;LB=3;HB=^3;RB=1;DISCHRG=0&^3;BYPASS=2;CHRG=^0",
    " OL = ^0 ; OB = 0 ; ",
])
def test_valid_rules(text):
    assert gpio_rules.parse(text).rules


@pytest.mark.parametrize("text, expected", [
    (";", "expected a state name"),
    ("=", "expected a state name"),
    ("0", "expected a state name"),
    ("^", "expected a state name"),
    ("OB", "expected '=' after OB"),
    ("OB=", "expected a line number"),
    ("OB=;", "expected a line number"),
    ("OB=a;", "expected a line number"),
    ("OB=&;", "expected a line number"),
    ("OB=^;", "expected a line number after '^'"),
    ("OB=^a;", "expected a line number after '^'"),
    ("OB=^=;", "expected a line number after '^'"),
    ("OB=^&;", "after '^'"),
    ("OB=^|;", "after '^'"),
    ("OB=^2a;", "expected '&', '|' or ';'"),
    ("OB=^2^1;", "expected '&', '|' or ';'"),
    ("OB=^2&a;", "expected a line number"),
    ("OB=^2&&;", "expected a line number"),
    ("OB=^2&|;", "expected a line number"),
    ("OB=^2|a;", "expected a line number"),
    ("OB=^2|&;", "expected a line number"),
    ("OB=^2||;", "expected a line number"),
    ("OB=^^2;", "after '^'"),
    ("OB=1;;", "expected a state name"),
    ("OB=(1|2);", "unexpected character '('"),
    ("OB=1,LB=2;", "unexpected character ','"),
    ("", "empty"),
    ("   ", "empty"),
])
def test_malformed_rules_say_where_and_what(text, expected):
    with pytest.raises(gpio_rules.RulesError) as e:
        gpio_rules.parse(text)
    assert expected in str(e.value)
    assert isinstance(e.value, ConfigError)
    if text.strip():
        assert "position" in str(e.value)


def test_error_points_at_the_position():
    with pytest.raises(gpio_rules.RulesError) as e:
        gpio_rules.parse("OL=^0;OB=0x;")
    assert e.value.pos == 10  # counted from 0, as NUT does
    assert "'OL=^0;OB=0x' <- here" in str(e.value)


def levels_for(rules, values):
    return dict(zip(rules.lines(), values))


@pytest.mark.parametrize("text, values, expected", [
    ("DISCHRG=0&^6;", (0, 0), [0]),
    ("DISCHRG=0&^6;", (1, 0), [1]),
    ("DISCHRG=0&^6;", (0, 1), [0]),
    ("DISCHRG=0&^6;", (1, 1), [0]),
    ("OL=1;", (0,), [0]), ("OL=1;", (1,), [1]),
    ("OL=^1;", (1,), [0]), ("OL=^1;", (0,), [1]),
    ("OL=1|2;", (0, 0), [0]), ("OL=1|2;", (1, 0), [1]),
    ("OL=1|2;", (0, 1), [1]), ("OL=1|2;", (1, 1), [1]),
    ("OL=1&2;", (0, 0), [0]), ("OL=1&2;", (1, 0), [0]),
    ("OL=1&2;", (0, 1), [0]), ("OL=1&2;", (1, 1), [1]),
    ("OL=1&^2;", (1, 0), [1]), ("OL=1&^2;", (1, 1), [0]),
    ("OL=^1&2;", (0, 1), [1]), ("OL=^1&2;", (1, 1), [0]),
    ("OL=^1&^2;", (0, 0), [1]), ("OL=^1&^2;", (0, 1), [0]),
    # & binds tighter than |
    ("TSTAO=1&2|3;", (1, 1, 0), [1]), ("TSTAO=1&2|3;", (0, 1, 0), [0]),
    ("TSTAO=1&2|3;", (0, 0, 1), [1]),
    ("TSTOA=1|2&3;", (1, 0, 0), [1]), ("TSTOA=1|2&3;", (0, 1, 0), [0]),
    ("TSTOA=1|2&3;", (0, 1, 1), [1]), ("TSTOA=1|2&3;", (0, 0, 1), [0]),
    # Lines in order of first use: 0, 3, 1, 6.
    (CYBERSHIELD, (0, 0, 0, 0), [1, 0, 0, 0, 0, 0]),
    (CYBERSHIELD, (1, 0, 0, 0), [0, 1, 0, 0, 1, 0]),
    (CYBERSHIELD, (1, 1, 1, 0), [0, 1, 1, 1, 1, 0]),
    (CYBERSHIELD, (1, 1, 1, 1), [0, 1, 1, 1, 0, 1]),
])
def test_rule_values_match_nut(text, values, expected):
    rules = gpio_rules.parse(text)
    levels = levels_for(rules, values)
    assert [int(r.evaluate(levels)) for r in rules.rules] == expected


UPDATE = "OL=^0;OB=0&^6;LB=3&^6;RB=1&^6;DISCHRG=0&^6;BYPASS=6;"


@pytest.mark.parametrize("values, low, status, charger, charge", [
    # lines 0, 6, 3, 1 -> status, battery.charger.status, battery.charge
    ((0, 0, 0, 0), None, "OL", None, False),
    ((1, 0, 0, 0), None, "OB DISCHRG", "discharging", False),
    ((0, 1, 0, 0), None, "OL BYPASS", None, None),
    ((1, 1, 0, 0), None, "BYPASS", None, None),
    ((1, 0, 1, 1), None, "OB LB RB DISCHRG", "discharging", False),
    ((0, 0, 0, 0), 10, "OL", None, "100"),
    ((1, 0, 0, 0), 10, "OB DISCHRG", "discharging", "100"),
    ((0, 0, 1, 0), 10, "OL LB", None, "10"),
    ((1, 0, 1, 0), 10, "OB LB DISCHRG", "discharging", "10"),
    ((0, 1, 1, 0), 10, "OL BYPASS", None, None),
])
def test_ups_state_matches_nut_update(values, low, status, charger, charge):
    rules = gpio_rules.parse(UPDATE)
    st = gpio_rules.ups_state(rules, levels_for(rules, values), low)
    assert (" ".join(st.words), st.charger, st.charge) == (status, charger, charge)


def test_charger_follows_the_later_rule():
    rules = gpio_rules.parse("CHRG=0;DISCHRG=1;")
    assert gpio_rules.ups_state(rules, {0: 1, 1: 1}).charger == "discharging"
    assert gpio_rules.ups_state(rules, {0: 1, 1: 0}).charger == "charging"


# -- fuel gauge --------------------------------------------------------------
# A UPS-Lite's MAX17040G as dumped by `i2cdump -y 1 0x36` (davidem/UPS-Lite
# README): 00: ff ff b5 20 23 0f 00 00 00 02 ff ff 97 00 ...
UPS_LITE_DUMP = bytes.fromhex("ffffb520230f00000002ffff9700ffff")


def test_register_math_on_a_real_dump():
    vcell = hats.word(UPS_LITE_DUMP[2:4])
    soc = hats.word(UPS_LITE_DUMP[4:6])
    assert (vcell, soc) == (0xB520, 0x230F)
    assert abs(hats.vcell_volts(vcell) - 3.6225) < 1e-9
    assert abs(hats.soc_percent(soc) - (35 + 15 / 256)) < 1e-9
    assert hats.battery_values(vcell, soc) == ("3.62", "35")
    assert hats.word(UPS_LITE_DUMP[8:10]) == 2  # VERSION


def test_register_math_limits():
    assert hats.battery_values(0xFFFF, 0x6500) == ("5.12", "100")  # SOC above 100 %
    assert hats.battery_values(0, 0) == ("0.00", "0")
    with pytest.raises(ValueError):
        hats.word(b"\x01")


def test_low_battery_thresholds():
    assert hats.is_low(19.0, 3.7, charge_low=20)
    assert not hats.is_low(20.0, 3.7, charge_low=20)
    assert hats.is_low(80.0, 2.9, charge_low=20, voltage_low=3.0)
    assert not hats.is_low(80.0, 3.1, voltage_low=3.0)
    assert not hats.is_low(1.0, 1.0)


def test_presets():
    assert hats.preset("X728")["rules"] == "OL=^6;OB=6;DISCHRG=6;"
    assert hats.preset("ups_lite") is hats.preset("UPS-Lite") is hats.preset("upslite")
    for p in hats.PRESETS.values():
        assert gpio_rules.parse(p["rules"]).lines()
    with pytest.raises(KeyError):
        hats.preset("x729")


# -- whatever the string, the parser answers or says what is wrong -------


@settings(max_examples=1000)
@given(st.text(alphabet="OLBD=^&|;0123 6x(", max_size=30))
def test_random_rules_parse_or_fail_cleanly(text):
    try:
        rules = gpio_rules.parse(text)
    except gpio_rules.RulesError as e:
        assert str(e).startswith("rules: ")
        return
    # What parses evaluates for any levels, and prints back to itself.
    levels = dict((n, n % 2) for n in rules.lines())
    rules.true_states(levels)
    assert str(gpio_rules.parse(str(rules))) == str(rules)
