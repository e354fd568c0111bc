"""Showing provisioning's exit code on the status LED.

The init calls ``nutapp provision --blink <code>`` after a failed run: the
LED blinks <code> times, pauses, and repeats, so a person without a screen
can tell "a file on the card is wrong" (3) from "the SD card's data
partition cannot be written" (4).
"""

ON_TIME = 0.3
OFF_TIME = 0.3
PAUSE = 1.5


def pattern(code, on_time=ON_TIME, off_time=OFF_TIME, pause=PAUSE):
    """``[(on seconds, off seconds)]`` of one showing of `code`."""
    if code <= 0:
        return []
    steps = [(on_time, off_time)] * code
    steps[-1] = (on_time, pause)
    return steps


def blink_code(code, pin="GPIO17", repeat=3, led=None, **times):
    """Blink `code` on the LED at `pin` (or on a given gpiozero LED)
    `repeat` times; `times` may set on_time, off_time and pause."""
    own = led is None
    if own:
        from gpiozero import LED

        led = LED(pin)
    try:
        for _ in range(repeat):
            for on, off in pattern(code, **times):
                led.blink(on_time=on, off_time=off, n=1, background=False)
    finally:
        if own:
            led.close()
