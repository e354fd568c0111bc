"""GPIO lines against gpiozero's MockFactory: the pins' state timelines."""

import threading
import time

import pytest

pytest.importorskip("gpiozero")
from gpiozero.pins.mock import MockFactory  # noqa: E402

from nutapp.core.upsmon import parse_config  # noqa: E402
from nutapp.upsmon.gpio import Indicators, PowerCut, ShutdownButton  # noqa: E402


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def conf(text):
    return parse_config("MONITOR u@h 1 mon pass primary\n" + text)


def levels(pin):
    """The pin's successive levels (MockPin.states, each change once)."""
    return [s.state for s in pin.states]


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def test_pulse_pattern_timeline(factory):
    c = conf("GPIO_POWERCUT 26 pulse:60,40,60\n")
    cut = PowerCut(c.gpio_powercut, pin_factory=factory)
    pin = factory.pin(26)
    assert levels(pin) == [False]          # created low, nothing asserted
    cut.fire()
    assert levels(pin) == [False, True, False, True, False]
    # each level lasted at least as long as asked (PinState.timestamp is the
    # time since the previous change)
    durations = [s.timestamp for s in pin.states[2:]]
    assert durations[0] >= 0.06 and durations[1] >= 0.04 and durations[2] >= 0.06
    cut.fire()                              # once only
    assert levels(pin) == [False, True, False, True, False]


def test_x728_style_pulse_is_one_long_high(factory):
    c = conf("GPIO_POWERCUT 26 pulse:4000\n")
    slept = []
    cut = PowerCut(c.gpio_powercut, pin_factory=factory, sleep=slept.append)
    cut.fire()
    assert levels(factory.pin(26)) == [False, True, False]
    assert slept == [4.0]


def test_level_stays_asserted(factory):
    c = conf("GPIO_POWERCUT 13 level\n")
    cut = PowerCut(c.gpio_powercut, pin_factory=factory)
    cut.fire()
    assert levels(factory.pin(13)) == [False, True]
    assert factory.pin(13).state is True


def test_active_low_power_cut_never_glitches_low_before_firing(factory):
    c = conf("GPIO_POWERCUT 13 pulse:20 active_low\n")
    cut = PowerCut(c.gpio_powercut, pin_factory=factory)
    pin = factory.pin(13)
    # the mock pin starts as a floating input (low); configuring it as an
    # output goes straight to the inactive level, high
    assert levels(pin) == [False, True]
    assert pin.function == "output"
    cut.fire()
    assert levels(pin) == [False, True, False, True]


def test_leds_dark_until_a_decision_then_one_state_at_a_time(factory):
    c = conf("GPIO_LED_ONLINE 17\nGPIO_LED_ONBATT 27 blink:30,30\nGPIO_LED_LOWBATT 22\n"
             "GPIO_LED_COMMBAD 23 active_low\n")
    leds = Indicators(c.gpio_leds, pin_factory=factory)
    online, onbatt, lowbatt, commbad = (factory.pin(n) for n in (17, 27, 22, 23))
    leds.show(None)
    assert levels(online) == levels(onbatt) == levels(lowbatt) == [False]
    assert levels(commbad) == [False, True]     # active low: high is dark
    leds.show("online")
    assert levels(online) == [False, True]
    leds.show("online")                         # no change, no glitch
    assert levels(online) == [False, True]
    leds.show("onbatt")
    assert levels(online) == [False, True, False]
    assert wait_for(lambda: len(onbatt.states) >= 5)
    seq = levels(onbatt)
    assert seq[:5] == [False, True, False, True, False]
    leds.show("commbad")
    assert wait_for(lambda: onbatt.state is False)
    assert commbad.state is False               # lit: active low
    assert lowbatt.states[-1].state is False and levels(lowbatt) == [False]
    leds.show("lowbatt")
    assert levels(lowbatt) == [False, True]
    assert commbad.state is True
    leds.close()


def test_shutdown_button_to_ground(factory):
    c = conf("GPIO_SHUTDOWN_BUTTON 6\n")
    asked = threading.Event()
    ShutdownButton(c.gpio_shutdown_button, asked.set, pin_factory=factory)
    pin = factory.pin(6)
    assert pin.state is True                    # pulled up, not pressed
    pin.drive_low()
    assert asked.wait(2)


def test_hat_shutdown_request_must_be_held(factory):
    # Geekworm X728: GPIO5 goes high for more than 600 ms to ask for a shutdown
    c = conf("GPIO_SHUTDOWN_BUTTON 5 pull_down hold:100\n")
    asked = threading.Event()
    ShutdownButton(c.gpio_shutdown_button, asked.set, pin_factory=factory)
    pin = factory.pin(5)
    assert pin.state is False
    pin.drive_high()
    pin.drive_low()                             # a blip: not a request
    assert not asked.wait(0.3)
    pin.drive_high()
    assert asked.wait(3)
