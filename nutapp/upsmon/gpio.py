"""GPIO lines for upsmon on a Raspberry Pi, through gpiozero.

Our own upsmon.conf directives (NUT has none for this); a pin is a BCM
number (26) or a gpiozero name (GPIO26, BOARD37); add `active_low` to any
output whose hardware is lit or triggered by a low level.

GPIO_POWERCUT <pin> level|pulse:<ms>[,<ms>...] [active_low]
    Asks the UPS or power HAT to cut the power, once, after the final
    shutdown step (POWERDOWNFLAG written, SHUTDOWNCMD started). `level`
    asserts the line and holds it until the system halts; `pulse:` plays
    a pattern of on/off times in milliseconds, starting with on, then
    leaves the line off. Geekworm X728: `GPIO_POWERCUT 26 pulse:4000`
    (GPIO13 on boards before v2.0): held high 3 to 7 s, the board powers
    off once the Pi has halted; 1-2 s would reboot instead.
GPIO_LED_ONLINE <pin> [steady|blink:<on ms>,<off ms>] [active_low]
GPIO_LED_ONBATT ...  (default blink:1000,1000)
GPIO_LED_LOWBATT ... (default blink:200,200; also lit while shutting down)
GPIO_LED_COMMBAD ... (default blink:100,1900)
    Status LEDs; one at most is lit, for the worst state over all
    monitored UPSes. All stay dark until the first poll has answered.
GPIO_SHUTDOWN_BUTTON <pin> [hold:<ms>] [pull_up|pull_down]
    An input that asks for an orderly shutdown, as `upsmon -c fsd` does.
    pull_up (default): a button to ground; pull_down: a line a HAT drives
    high. `hold:` ignores presses shorter than that. Geekworm X728, which
    raises GPIO5 for more than 600 ms to ask the Pi to shut down:
    `GPIO_SHUTDOWN_BUTTON 5 pull_down hold:600`.

Outputs are created with their inactive level (gpiozero's initial_value
False, with active_high already applied), so nothing glitches at start-up,
and they change only on a real decision of the monitor.
"""

import logging
import time

log = logging.getLogger("nutapp.upsmon")


def _gpiozero():
    try:
        import gpiozero
    except ImportError:
        raise SystemExit("GPIO directives in upsmon.conf need gpiozero (pip install gpiozero, "
                         "or apt install python3-gpiozero)")
    return gpiozero


class Indicators:
    """The status LEDs: `show(state)` with a state from Upsmon.indicator()."""

    def __init__(self, lines, pin_factory=None):
        gz = _gpiozero()
        self.lines = lines
        self.leds = {}
        self.state = None
        for state, line in lines.items():
            self.leds[state] = gz.LED(line.pin, active_high=line.active_high,
                                      initial_value=False, pin_factory=pin_factory)

    def show(self, state):
        if state == self.state:
            return
        self.state = state
        for name, led in self.leds.items():
            if name != state:
                led.off()
        led = self.leds.get(state)
        if led is None:
            return
        pattern = self.lines[state].pattern
        if pattern is None:
            led.on()
        else:
            led.blink(on_time=pattern[0], off_time=pattern[1], background=True)

    def close(self):
        for led in self.leds.values():
            led.close()


class PowerCut:
    """The line that asks the UPS or HAT to cut the power."""

    def __init__(self, line, pin_factory=None, sleep=time.sleep):
        gz = _gpiozero()
        self.line = line
        self.sleep = sleep
        self.fired = False
        self.device = gz.DigitalOutputDevice(line.pin, active_high=line.active_high,
                                             initial_value=False, pin_factory=pin_factory)

    def fire(self):
        """Drive the configured level or pulse pattern (once)."""
        if self.fired:
            return
        self.fired = True
        if self.line.pattern is None:
            log.critical("asserting the power-cut line (GPIO %s) until the system halts",
                         self.line.pin)
            self.device.on()
            return
        log.critical("pulsing the power-cut line (GPIO %s): %s ms", self.line.pin,
                     ",".join(str(int(t * 1000)) for t in self.line.pattern))
        for i, seconds in enumerate(self.line.pattern):
            if i % 2 == 0:
                self.device.on()
            else:
                self.device.off()
            self.sleep(seconds)
        self.device.off()

    def close(self):
        self.device.close()


class ShutdownButton:
    """An input asking for an orderly shutdown; calls `request()` once per press."""

    def __init__(self, line, request, pin_factory=None):
        gz = _gpiozero()
        self.line = line
        self.request = request
        kw = {}
        if line.hold:
            kw["hold_time"] = line.hold
        self.button = gz.Button(line.pin, pull_up=line.pull_up, pin_factory=pin_factory, **kw)
        if line.hold:
            self.button.when_held = self._pressed
        else:
            self.button.when_pressed = self._pressed

    def _pressed(self, *args):
        log.warning("shutdown requested on GPIO %s", self.line.pin)
        self.request()

    def close(self):
        self.button.close()

