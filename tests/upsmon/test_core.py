"""upsmon's configuration parser and decisions, with a clock passed in.

Plain functions and asserts so MicroPython runs them too (test_micropython).
"""

from nutapp.core.errors import ConfigError
from nutapp.core.upsmon import (DEFAULT_FLAGS, EXEC, IGNORE, SDMAGIC, SYSLOG, WALL, Upsmon,
                                format_message, parse_config)


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


def conf(extra="", monitors="MONITOR ups@server 1 mon pass primary\n"):
    return parse_config(monitors + extra, "/etc/nut/upsmon.conf")


def kinds(actions):
    out = []
    for a in actions:
        if a.kind == "notify":
            out.append(a.ntype)
        elif a.kind != "log":
            out.append(a.kind)
    return out


def notified(actions):
    return [a.ntype for a in actions if a.kind == "notify"]


def logs(actions):
    return [a.message for a in actions if a.kind == "log"]


# -- upsmon.conf ---------------------------------------------------------------

def test_defaults_are_nuts():
    c = conf()
    assert (c.minsupplies, c.pollfreq, c.pollfreqalert, c.deadtime, c.hostsync,
            c.finaldelay) == (1, 5, 5, 15, 15, 5)
    assert (c.rbwarntime, c.nocommwarntime, c.offduration, c.overduration,
            c.oblbduration) == (43200, 300, 30, -1, 0)
    assert c.shutdowncmd is None and c.powerdownflag is None and c.notifycmd is None
    assert c.flags("ONBATT") == SYSLOG | WALL == DEFAULT_FLAGS
    assert not c.certverify and not c.forcessl and c.alarmcritical


def test_every_directive():
    c = parse_config("""
# a full upsmon.conf
MONITOR ups1@host1:3500 1 monuser "pa ss" primary
MONITOR ups2@[::1]:3493 2 monuser pass master
MONITOR ups3 0 viewer pw slave
MONITOR ups4@host4 1 viewer pw secondary
MINSUPPLIES 2
POLLFREQ 3
POLLFREQALERT 1
DEADTIME 9
HOSTSYNC 7
FINALDELAY 2
RBWARNTIME 600
NOCOMMWARNTIME 60
OFFDURATION -1
OVERDURATION 10
OBLBDURATION 4
SHUTDOWNCMD "/sbin/shutdown -h +0"
NOTIFYCMD /usr/sbin/upssched --verbose
NOTIFYMSG ONBATT "UPS %s: on battery!"
NOTIFYFLAG ONBATT SYSLOG+WALL+EXEC
NOTIFYFLAG online IGNORE
POWERDOWNFLAG /etc/killpower
RUN_AS_USER nutmon
CERTPATH /etc/nut/ca
CERTFILE /etc/nut/client.pem
CERTIDENT "my client" "keypass"
CERTHOST "host1:3500" "host1.example" 1 1
CERTVERIFY 1
FORCESSL 1
ALARMCRITICAL 0
SHUTDOWNEXIT yes
""", "upsmon.conf")
    m = c.monitors
    assert [x.system for x in m] == ["ups1@host1:3500", "ups2@[::1]:3493", "ups3", "ups4@host4"]
    assert (m[0].upsname, m[0].host, m[0].port, m[0].password) == ("ups1", "host1", 3500, "pa ss")
    assert (m[1].upsname, m[1].host, m[1].port) == ("ups2", "::1", 3493)
    assert (m[2].host, m[2].port, m[2].powervalue) == ("localhost", 3493, 0)
    assert [x.primary for x in m] == [True, True, False, False]
    assert (c.minsupplies, c.pollfreq, c.pollfreqalert, c.deadtime, c.hostsync,
            c.finaldelay, c.rbwarntime, c.nocommwarntime) == (2, 3, 1, 9, 7, 2, 600, 60)
    assert (c.offduration, c.overduration, c.oblbduration) == (-1, 10, 4)
    assert c.shutdowncmd == "/sbin/shutdown -h +0"
    assert c.notifycmd == ["/usr/sbin/upssched", "--verbose"]
    assert c.message("ONBATT") == "UPS %s: on battery!"
    assert c.flags("ONBATT") == SYSLOG | WALL | EXEC
    assert c.flags("ONLINE") == IGNORE
    assert c.powerdownflag == "/etc/killpower" and c.run_as_user == "nutmon"
    assert (c.certpath, c.certfile, c.certident) == ("/etc/nut/ca", "/etc/nut/client.pem",
                                                      ("my client", "keypass"))
    assert c.certhosts == {"host1:3500": ("host1.example", True, True)}
    assert c.certverify and c.forcessl and not c.alarmcritical
    assert c.total_power() == 4
    assert c.warnings == []


def test_shutdowncmd_extra_words_are_quoted_arguments():
    c = conf('SHUTDOWNCMD /sbin/shutdown "-h" "it\'s time"\n')
    assert c.shutdowncmd == "/sbin/shutdown '-h' 'it'\"'\"'s time'"


def test_oblbduration_below_one_means_off():
    assert conf("OBLBDURATION -5\n").oblbduration == 0


def test_broken_lines_name_file_and_line():
    cases = [
        ("POLLFREQ fast\n", 2, "whole number"),
        ("POLLFREQ 0\n", 2, "at least 1"),
        ("MINSUPPLIES -1\n", 2, "at least 0"),
        ("DEADTIME\n", 2, "exactly one"),
        ("MONITOR ups@h 1 pass primary\n", 2, "without a user name"),
        ("MONITOR ups@h 1 u p boss\n", 2, "primary or secondary"),
        ("MONITOR ups@h x u p primary\n", 2, "whole number"),
        ("MONITOR ups@h -1 u p primary\n", 2, "0 or more"),
        ("MONITOR @h 1 u p primary\n", 2, "is not <ups>"),
        ("MONITOR ups@server 1 u p primary\n", 2, "twice"),
        ("NOTIFYFLAG ONBAT SYSLOG\n", 2, "unknown notification type"),
        ("NOTIFYFLAG ONBATT SYSLOG+MAIL\n", 2, "unknown notify flag"),
        ("NOTIFYMSG ONBATT two words\n", 2, "one quoted message"),
        ("CERTVERIFY yes\n", 2, "0 or 1"),
        ("CERTHOST h name 1\n", 2, "CERTHOST takes"),
        ("\n\nSHUTDOWNCMD\n", 4, "needs a command"),
        ('NOTIFYMSG ONBATT "unclosed\n', 2, "unbalanced"),
        ("GPIO_POWERCUT 26 pulse:0\n", 2, "positive"),
        ("GPIO_POWERCUT 26\n", 2, "level or pulse"),
        ("GPIO_POWERCUT pin26 level\n", 2, "not a GPIO pin"),
        ("GPIO_LED_ONBATT 5 blink:100\n", 2, "<on ms>,<off ms>"),
        ("GPIO_LED_RAINBOW 5\n", 2, "unknown GPIO directive"),
        ("GPIO_SHUTDOWN_BUTTON 5 toggle\n", 2, "hold:<ms>"),
    ]
    for text, line, words in cases:
        e = raises(ConfigError, conf, text)
        assert e.filename == "/etc/nut/upsmon.conf", text
        assert e.lineno == line, (text, e.lineno)
        assert ("/etc/nut/upsmon.conf:%d: " % line) in str(e), str(e)
        assert words in str(e), (text, str(e))


def test_settings_that_cannot_work_together():
    e = raises(ConfigError, conf, "MINSUPPLIES 2\n")
    assert "add up to 1" in str(e) and str(e).startswith("/etc/nut/upsmon.conf: ")
    assert "CERTPATH" in str(raises(ConfigError, conf, "CERTVERIFY 1\n"))
    assert "CERTPATH" in str(raises(ConfigError, conf, 'CERTHOST "h" "h" 1 0\n'))
    # monitoring only: no MONITOR line is fine with MINSUPPLIES 0
    assert parse_config("MINSUPPLIES 0\n").monitors == []


def test_unknown_directive_is_a_warning_with_its_line():
    c = conf("POLLFAIL_LOG_THROTTLE_MAX 5\nSOMETHING new\n")
    assert c.warnings == ["/etc/nut/upsmon.conf:3: unknown directive SOMETHING (ignored)"]


def test_gpio_directives():
    c = conf("GPIO_POWERCUT 26 pulse:4000\nGPIO_LED_ONLINE GPIO17 active_low\n"
             "GPIO_LED_ONBATT 27 blink:500,250\nGPIO_LED_LOWBATT 22 steady\n"
             "GPIO_LED_COMMBAD BOARD37\nGPIO_SHUTDOWN_BUTTON 5 pull_down hold:600\n")
    assert (c.gpio_powercut.pin, c.gpio_powercut.pattern, c.gpio_powercut.active_high) == \
        (26, (4.0,), True)
    leds = c.gpio_leds
    assert (leds["online"].pin, leds["online"].active_high, leds["online"].pattern) == \
        ("GPIO17", False, None)
    assert leds["onbatt"].pattern == (0.5, 0.25)
    assert leds["lowbatt"].pattern is None
    assert leds["commbad"].pattern == (0.1, 1.9)
    b = c.gpio_shutdown_button
    assert (b.pin, b.pull_up, b.hold) == (5, False, 0.6)
    c = conf("GPIO_POWERCUT 13 level active_low\n")
    assert c.gpio_powercut.pattern is None and not c.gpio_powercut.active_high


def test_default_messages_say_which_ups_what_and_when():
    c = conf("DEADTIME 20\nFINALDELAY 7\nHOSTSYNC 30\n")
    for ntype in ("ONBATT", "LOWBATT", "FSD", "COMMBAD", "NOCOMM", "REPLBATT", "OFF"):
        msg = format_message(c.message(ntype), "ups@server")
        assert "ups@server" in msg and "{" not in msg, msg
    assert "20 s" in c.message("COMMBAD")
    assert "7 s" in c.message("SHUTDOWN")
    assert "30 s" in c.message("SHUTDOWN_HOSTSYNC")


def test_format_message():
    assert format_message("UPS %s is on battery", "u1") == "UPS u1 is on battery"
    assert format_message("%s alarm: %s", "u1", "Replace battery!") == "u1 alarm: Replace battery!"
    assert format_message("100% sure about %s", "u1") == "100% sure about u1"
    assert format_message("no placeholder", "u1") == "no placeholder"
    assert format_message("%s %s %s", "a", "b") == "a b %s"


# -- decisions -----------------------------------------------------------------

U = "ups@server"
FAST = "POLLFREQ 5\nPOLLFREQALERT 1\nHOSTSYNC 10\nDEADTIME 15\nFINALDELAY 5\n"


def machine(extra=FAST, monitors="MONITOR ups@server 1 mon pass primary\n"):
    return Upsmon(conf(extra, monitors))


def poll(m, now, status, name=U, alarm=None):
    out = m.poll_ok(name, now, status, alarm)
    return out + m.recalc(now)


def test_startup_on_line_says_nothing():
    m = machine()
    assert kinds(poll(m, 0, "OL CHRG")) == []
    assert kinds(poll(m, 5, "OL")) == []
    assert m.phase == "monitor"


def test_outage_and_return_notify_once_each():
    m = machine()
    poll(m, 0, "OL")
    assert kinds(poll(m, 5, "OB DISCHRG")) == ["ONBATT"]
    assert kinds(poll(m, 6, "OB DISCHRG")) == []
    assert kinds(poll(m, 7, "OL CHRG")) == ["ONLINE"]
    assert kinds(poll(m, 8, "OL")) == []


def test_primary_full_shutdown_sequence():
    m = machine("POLLFREQ 5\nHOSTSYNC 10\nFINALDELAY 5\nPOWERDOWNFLAG /etc/killpower\n"
                "SHUTDOWNCMD /sbin/poweroff\n")
    poll(m, 0, "OL")
    poll(m, 5, "OB")
    out = poll(m, 10, "OB LB")
    assert kinds(out) == ["LOWBATT", "set_fsd"]
    assert out[-1].ups == U
    assert any("on battery with a low battery" in l for l in logs(out))
    assert m.phase == "hostsync"
    assert kinds(m.fsd_set(U, 10.1)) == ["FSD"]
    # a secondary is still logged in: announce the wait once
    assert kinds(m.numlogins({U: 2}, 10.2)) == ["SHUTDOWN_HOSTSYNC"]
    assert kinds(m.numlogins({U: 2}, 12)) == []
    assert kinds(m.tick(13)) == []
    out = m.numlogins({U: 1}, 14)
    assert kinds(out) == ["SHUTDOWN"]
    assert m.phase == "final"
    assert kinds(m.tick(18.9)) == []
    out = m.tick(19)
    assert kinds(out) == ["shutdown"]
    assert "POWERDOWNFLAG /etc/killpower" in logs(out)[0] and "/sbin/poweroff" in logs(out)[0]
    assert m.phase == "done"
    assert kinds(m.tick(30)) == [] and kinds(m.recalc(30)) == []


def test_primary_gives_up_on_secondaries_after_hostsync():
    m = machine()
    poll(m, 0, "OB LB")
    assert m.phase == "hostsync"
    m.numlogins({U: 3}, 0.5)
    assert kinds(m.numlogins({U: 3}, 10)) == []
    out = m.numlogins({U: 3}, 10.5)
    assert kinds(out) == ["SHUTDOWN"]
    assert any("2 client(s) still logged in" in l for l in logs(out))


def test_primary_without_numlogins_answers_waits_hostsync_then_goes():
    m = machine()
    poll(m, 0, "OB LB")
    assert kinds(m.numlogins({U: None}, 1)) == ["SHUTDOWN"]  # nobody known to wait for
    m = machine()
    poll(m, 0, "OB LB")
    assert kinds(m.tick(5)) == []
    assert kinds(m.tick(10.5)) == ["SHUTDOWN"]


def test_finaldelay_zero_shuts_down_at_once():
    m = machine("FINALDELAY 0\n")
    poll(m, 0, "OB LB")
    assert kinds(m.numlogins({U: 1}, 1)) == ["SHUTDOWN", "shutdown"]


def test_secondary_gives_the_primary_hostsync_to_set_fsd():
    m = machine(FAST, "MONITOR ups@server 1 mon pass secondary\n")
    poll(m, 0, "OL")
    poll(m, 5, "OB")
    out = poll(m, 10, "OB LB")
    assert kinds(out) == ["LOWBATT"]
    assert logs(out) == ["UPS ups@server is on battery with a low battery: waiting up to "
                         "HOSTSYNC (10 s) for its primary to set FSD, then it counts as critical"]
    assert logs(poll(m, 15, "OB LB")) == []
    assert kinds(poll(m, 20, "OB LB")) == []          # 10 s: not more than HOSTSYNC yet
    out = poll(m, 21, "OB LB")
    assert kinds(out) == ["SHUTDOWN"]                  # no set_fsd: not a primary
    assert any("has not set FSD within HOSTSYNC (10 s)" in l for l in logs(out))
    assert m.phase == "final"
    assert kinds(m.tick(26)) == ["shutdown"]


def test_secondary_goes_at_once_on_fsd():
    m = machine(FAST, "MONITOR ups@server 1 mon pass secondary\n")
    poll(m, 0, "OB LB")
    out = poll(m, 1, "FSD OB LB")
    assert kinds(out) == ["FSD", "SHUTDOWN"]
    assert any("forced shutdown (FSD) is set" in l for l in logs(out))


def test_fsd_on_line_is_critical_too():
    m = machine(FAST, "MONITOR ups@server 1 mon pass secondary\n")
    poll(m, 0, "OL")
    assert kinds(poll(m, 1, "FSD OL")) == ["FSD", "SHUTDOWN"]


def test_fsd_notified_once_between_set_and_poll():
    m = machine()
    poll(m, 0, "OB LB")
    assert kinds(m.fsd_set(U, 0.1)) == ["FSD"]
    assert kinds(m.poll_ok(U, 0.2, "FSD OB LB")) == []


def test_lost_contact_on_battery_counts_as_low_battery_after_deadtime():
    m = machine()
    poll(m, 0, "OL")
    poll(m, 1, "OB DISCHRG")
    out = m.poll_failed(U, 2, "Connection failure: Connection refused") + m.recalc(2)
    assert kinds(out) == ["COMMBAD"]
    assert any("after DEADTIME (15 s)" in l for l in logs(out))
    for t in (5, 10, 16):
        assert kinds(m.poll_failed(U, t, "refused") + m.recalc(t)) == []
    out = m.poll_failed(U, 16.5, "refused") + m.recalc(16.5)   # 15.5 s since the last poll
    assert kinds(out) == ["set_fsd"]
    assert any("no answer for more than DEADTIME" in l for l in logs(out))


def test_lost_contact_on_line_never_shuts_down_and_nags():
    m = machine("NOCOMMWARNTIME 60\n")
    poll(m, 0, "OL")
    assert kinds(m.poll_failed(U, 5, "refused")) == ["COMMBAD"]
    seen = []
    for t in range(10, 200, 5):
        out = m.poll_failed(U, t, "refused") + m.recalc(t)
        assert "set_fsd" not in kinds(out)
        if kinds(out):
            seen.append((t, kinds(out)))
    assert seen == [(60, ["NOCOMM"]), (125, ["NOCOMM"]), (190, ["NOCOMM"])]
    assert kinds(poll(m, 200, "OL")) == ["COMMOK"]


def test_unreachable_from_the_start():
    m = machine("NOCOMMWARNTIME 60\n")
    assert kinds(m.poll_failed(U, 0, "refused")) == ["COMMBAD"]
    assert kinds(m.poll_failed(U, 5, "refused")) == []
    assert kinds(m.poll_failed(U, 60, "refused")) == ["NOCOMM"]
    assert kinds(m.recalc(100)) == []
    assert kinds(poll(m, 101, "OL")) == ["COMMOK"]


def test_low_battery_while_calibrating_is_not_critical():
    m = machine()
    out = poll(m, 0, "OB LB CAL")
    assert kinds(out) == ["ONBATT", "LOWBATT", "CAL"]
    assert "while calibrating: not acting on it" in logs(out)[0]
    assert kinds(poll(m, 30, "OB LB CAL")) == []
    assert kinds(poll(m, 31, "OL CHRG")) == ["NOTCAL", "ONLINE"]


def test_lost_contact_while_calibrating_or_on_bypass_is_critical():
    for word in ("CAL", "BYPASS"):
        m = machine()
        poll(m, 0, "OL " + word)
        m.poll_failed(U, 1, "refused")
        assert kinds(m.recalc(1)) == ["set_fsd"], word


def test_alarm_with_lost_contact_follows_alarmcritical():
    m = machine()
    poll(m, 0, "OL ALARM", alarm="Fan failure")
    m.poll_failed(U, 1, "refused")
    assert kinds(m.recalc(1)) == ["set_fsd"]
    m = machine("ALARMCRITICAL 0\n")
    poll(m, 0, "OL ALARM", alarm="Fan failure")
    m.poll_failed(U, 1, "refused")
    assert kinds(m.recalc(1)) == []


def test_off_longer_than_offduration():
    m = machine("OFFDURATION 30\n")
    assert kinds(poll(m, 0, "OFF")) == ["OFF"]
    assert kinds(poll(m, 30, "OFF")) == []
    out = poll(m, 31, "OFF")
    assert kinds(out) == ["set_fsd"]
    assert any("off for 31 s" in l for l in logs(out))
    assert any("switched off for longer than OFFDURATION (30 s)" in l for l in logs(out))


def test_off_back_on_in_time_and_offduration_variants():
    m = machine("OFFDURATION 30\n")
    poll(m, 0, "OFF")
    assert kinds(poll(m, 20, "OL")) == ["NOTOFF"]
    assert kinds(poll(m, 40, "OFF")) == ["OFF"]
    assert kinds(poll(m, 69, "OFF")) == []
    m = machine("OFFDURATION 0\n")
    assert kinds(poll(m, 0, "OFF")) == ["OFF", "set_fsd"]
    m = machine("OFFDURATION -1\n")
    for t in range(0, 1000, 50):
        assert "set_fsd" not in kinds(poll(m, t, "OFF"))
    m.poll_failed(U, 1001, "refused")
    assert kinds(m.recalc(1001)) == []


def test_overload_counts_only_with_lost_contact_and_overduration():
    m = machine()                                   # OVERDURATION -1: never
    poll(m, 0, "OL OVER")
    m.poll_failed(U, 1, "refused")
    assert kinds(m.recalc(100)) == []
    m = machine("OVERDURATION 10\n")
    assert kinds(poll(m, 0, "OL OVER")) == ["OVER"]
    assert kinds(poll(m, 60, "OL OVER")) == []        # talking: never critical by itself
    m = machine("OVERDURATION 10\n")
    poll(m, 0, "OL OVER")
    m.poll_failed(U, 1, "refused")
    assert kinds(m.recalc(9)) == []
    assert kinds(m.recalc(10)) == ["set_fsd"]
    m = machine("OVERDURATION 10\n")
    poll(m, 0, "OL OVER")
    assert kinds(poll(m, 5, "OL")) == ["NOTOVER"]


def test_oblbduration_holds_before_acting():
    m = machine("OBLBDURATION 5\n")
    poll(m, 0, "OB")
    out = poll(m, 1, "OB LB")
    assert kinds(out) == ["LOWBATT"]
    assert "after OBLBDURATION (5 s) unless the battery recovers" in logs(out)[0]
    assert m.interval(1) == 5      # POLLFREQALERT 1 is shorter than what is left
    assert kinds(poll(m, 3, "OB LB")) == []
    assert kinds(poll(m, 4, "OB")) == []            # LB gone: the hold starts over
    poll(m, 5, "OB LB")
    assert kinds(poll(m, 9, "OB LB")) == []
    assert kinds(poll(m, 10, "OB LB")) == ["set_fsd"]


def test_oblbduration_interval_is_bounded_by_the_hold():
    m = machine("POLLFREQALERT 30\nOBLBDURATION 5\n")
    poll(m, 0, "OB LB")
    assert m.interval(2) == 3


def test_minsupplies_two_of_two():
    two = ("MONITOR a@server 1 mon pass primary\n"
           "MONITOR b@server 1 mon pass primary\n")
    m = Upsmon(conf("MINSUPPLIES 2\n", two))
    m.poll_ok("a@server", 0, "OL")
    m.poll_ok("b@server", 0, "OL")
    assert kinds(m.recalc(0)) == []
    m.poll_ok("a@server", 1, "OB LB")
    m.poll_ok("b@server", 1, "OL")
    out = m.recalc(1)
    assert kinds(out) == ["set_fsd", "set_fsd"]   # FSD on both: we are primary for both
    assert [a.ups for a in out if a.kind == "set_fsd"] == ["a@server", "b@server"]
    assert any("power value 1 is below MINSUPPLIES 2" in l for l in logs(out))


def test_minsupplies_one_of_two_rides_through():
    two = ("MONITOR a@server 1 mon pass primary\n"
           "MONITOR b@server 1 mon pass primary\n")
    m = Upsmon(conf("MINSUPPLIES 1\n", two))
    m.poll_ok("a@server", 0, "OB LB")
    m.poll_ok("b@server", 0, "OL")
    out = m.recalc(0)
    assert kinds(out) == []
    assert any("UPS a@server is critical" in l for l in logs(out))
    m.poll_ok("a@server", 1, "OL")
    assert logs(m.recalc(1)) == ["UPS a@server is no longer critical"]
    m.poll_ok("a@server", 2, "OB LB")
    m.poll_ok("b@server", 2, "OB LB")
    assert kinds(m.recalc(2)) == ["set_fsd", "set_fsd"]


def test_monitoring_only_ups_never_shuts_down():
    m = Upsmon(conf("MINSUPPLIES 0\n", "MONITOR ups@server 0 mon pass secondary\n"))
    poll(m, 0, "OB LB")
    assert kinds(poll(m, 100, "FSD OB LB")) == ["FSD"]
    assert m.phase == "monitor"


def test_replace_battery_reminder_every_rbwarntime():
    m = machine("RBWARNTIME 100\n")
    seen = [t for t in range(0, 301, 10) if kinds(poll(m, t, "OL RB")) == ["REPLBATT"]]
    assert seen == [0, 110, 220]


def test_status_word_pairs():
    m = machine()
    poll(m, 0, "OL")
    assert kinds(poll(m, 1, "OL TRIM")) == ["TRIM"]
    assert kinds(poll(m, 2, "OL BOOST")) == ["NOTTRIM", "BOOST"]
    assert kinds(poll(m, 3, "OL BYPASS")) == ["NOTBOOST", "BYPASS"]
    assert kinds(poll(m, 4, "OL ECO")) == ["NOTBYPASS", "ECO"]
    assert kinds(poll(m, 5, "OL")) == ["NOTECO"]


def test_alarm_text_and_changes():
    m = machine()
    poll(m, 0, "OL")
    out = poll(m, 1, "OL ALARM", alarm="Replace battery!")
    assert notified(out) == ["ALARM"]
    assert out[0].message == "UPS ups@server raised an alarm: Replace battery!"
    assert kinds(poll(m, 2, "OL ALARM", alarm="Replace battery!")) == []
    assert kinds(poll(m, 3, "OL ALARM", alarm="Fan failure")) == ["ALARM"]
    assert kinds(poll(m, 4, "OL")) == ["NOTALARM"]


def test_unknown_status_words():
    m = machine()
    out = poll(m, 0, "OL WAIT")
    assert notified(out) == ["OTHER"]
    assert out[0].message.endswith(": WAIT")
    assert kinds(poll(m, 1, "OL WAIT")) == []
    assert kinds(poll(m, 2, "OL")) == ["NOTOTHER"]


def test_empty_status_is_lost_contact():
    m = machine()
    poll(m, 0, "OL")
    assert kinds(m.poll_ok(U, 1, "  ")) == ["COMMBAD"]


def test_user_fsd():
    m = machine()
    poll(m, 0, "OL")
    out = m.user_fsd(1, "the shutdown button (GPIO 5)")
    assert kinds(out) == ["set_fsd"]
    assert "the shutdown button (GPIO 5)" in logs(out)[0]
    assert m.user_fsd(2) == []
    s = Upsmon(conf("", "MONITOR ups@server 1 mon pass secondary\n"))
    assert kinds(s.user_fsd(0)) == ["SHUTDOWN"]


def test_notify_flags_and_messages_travel_with_actions():
    m = machine('NOTIFYFLAG ONBATT EXEC\nNOTIFYMSG ONBATT "%s went to battery (100%%)"\n')
    out = poll(m, 0, "OB")
    a = [x for x in out if x.kind == "notify"][0]
    assert (a.ntype, a.ups, a.flags) == ("ONBATT", U, EXEC)
    assert a.message == "ups@server went to battery (100%%)"


def test_poll_interval():
    m = machine("POLLFREQ 5\nPOLLFREQALERT 2\n")
    poll(m, 0, "OL")
    assert m.interval(0) == 5
    poll(m, 1, "OB")
    assert m.interval(1) == 2
    poll(m, 3, "OL")
    assert m.interval(3) == 5
    m.poll_failed(U, 4, "refused")
    assert m.interval(4) == 2


def test_indicator():
    two = ("MONITOR a@server 1 mon pass primary\n"
           "MONITOR b@server 1 mon pass primary\n")
    m = Upsmon(conf("MINSUPPLIES 2\n", two))
    assert m.indicator() is None
    m.poll_ok("a@server", 0, "OL")
    assert m.indicator() == "online"
    m.poll_failed("b@server", 0, "refused")
    assert m.indicator() == "commbad"
    m.poll_ok("a@server", 1, "OB")
    assert m.indicator() == "onbatt"
    m.poll_ok("a@server", 2, "OB LB")
    assert m.indicator() == "lowbatt"
    m.recalc(2)
    assert m.phase == "hostsync" and m.indicator() == "lowbatt"


def test_parent_gone_every_two_minutes():
    m = machine()
    assert kinds(m.parent_gone(0)) == ["NOPARENT"]
    assert kinds(m.parent_gone(60)) == []
    assert kinds(m.parent_gone(120)) == ["NOPARENT"]


def test_reload_keeps_state_of_kept_ups():
    m = machine()
    poll(m, 0, "OB")
    m.reconfigure(conf("", "MONITOR ups@server 2 mon pass primary\n"
                           "MONITOR new@server 1 mon pass primary\n"))
    assert kinds(poll(m, 1, "OB")) == []              # no second ONBATT
    assert [u.name for u in m.ups] == [U, "new@server"]
    assert m.track(U).monitor.powervalue == 2


def test_sdmagic_is_nuts():
    assert SDMAGIC == "upsmon-shutdown-file"
