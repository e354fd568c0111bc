"""The status LED shows the exit code as a number of blinks (gpiozero's
mock pins stand in for the GPIO header)."""

import pytest

from nutapp.provision import led
from nutapp.provision import problems as codes

gpiozero = pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory  # noqa: E402


def test_pattern():
    assert led.pattern(0) == []
    assert led.pattern(3) == [(0.3, 0.3), (0.3, 0.3), (0.3, 1.5)]
    assert len(led.pattern(codes.EXIT_INSTALL)) == 4


def test_blinks_on_a_mock_pin():
    factory = MockFactory()
    light = gpiozero.LED(17, pin_factory=factory)
    pin = factory.pin(17)
    pin.clear_states()
    led.blink_code(codes.EXIT_INVALID, led=light, repeat=2,
                   on_time=0.001, off_time=0.001, pause=0.002)
    rises = [s for prev, s in zip(pin.states, pin.states[1:]) if s.state and not prev.state]
    assert len(rises) == 2 * codes.EXIT_INVALID
    assert not light.is_lit
    light.close()


def test_exit_codes_are_distinct():
    values = [codes.EXIT_OK, codes.EXIT_USAGE, codes.EXIT_INVALID, codes.EXIT_INSTALL,
              codes.EXIT_CHECK]
    assert len(set(values)) == len(values)


def test_blink_option_of_the_command():
    import os
    import subprocess
    import sys

    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
    out = subprocess.run([sys.executable, "-m", "nutapp", "provision", "--blink", "1",
                          "--repeat", "1"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
