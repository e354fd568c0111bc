from _compat import raises
from nutapp.core.config import UpsConf, UpsdConf
from nutapp.core.errors import ConfigError
from nutapp.core.users import Users, constant_time_equal
from nutapp.core.dummy import parse_definition


def test_upsd_conf_defaults_and_values():
    c = UpsdConf.parse("")
    assert c.listeners() == [("127.0.0.1", 3493), ("::1", 3493)]
    assert c.maxage == 15 and c.disable_weak_ssl
    warnings = []
    c = UpsdConf.parse("LISTEN * 3494\nLISTEN ::1\nMAXAGE 30\nCERTREQUEST REQUIRE\n"
                       "BOGUS 1\n", warn=warnings.append)
    assert c.listen == [("*", 3494), ("::1", 3493)]
    assert c.maxage == 30 and c.certrequest == 2
    assert warnings and "upsd.conf:5" in warnings[0]


def test_upsd_conf_errors_name_file_and_line():
    e = raises(ConfigError, UpsdConf.parse, "MAXAGE 10\nLISTEN 1.2.3.4 notaport\n",
               "/etc/nut/upsd.conf")
    assert str(e).startswith("/etc/nut/upsd.conf:2: ")
    e = raises(ConfigError, UpsdConf.parse, 'CERTIDENT "a#b"\n', "u.conf")
    assert "u.conf:1" in str(e)


def test_ups_conf():
    text = 'maxretry = 3\n[myups]\n driver = dummy-ups\n port = a.dev\n' \
           ' desc = "A UPS"\n override.battery.charge = 50\n ignorelb\n'
    c = UpsConf.parse(text, known_drivers={"dummy-ups": 1})
    s = c.get("MYUPS")
    assert s.driver == "dummy-ups" and s.port == "a.dev" and s.desc == "A UPS"
    assert s.options["override.battery.charge"] == "50" and "ignorelb" in s.flags
    assert c.globals["maxretry"] == "3"
    e = raises(ConfigError, UpsConf.parse, "[a]\n port = x\n", "ups.conf")
    assert str(e) == "ups.conf:1: UPS [a] has no 'driver ='"
    e = raises(ConfigError, UpsConf.parse, "[a]\n driver = nosuch\n port = x\n", "ups.conf",
               None, {"dummy-ups": 1})
    assert "unknown driver" in str(e) and "ups.conf:1" in str(e)
    e = raises(ConfigError, UpsConf.parse, "[a]\n driver = dummy-ups\n", "ups.conf")
    assert "no 'port ='" in str(e)
    e = raises(ConfigError, UpsConf.parse, "[a]\n driver x y\n", "ups.conf")
    assert str(e).startswith("ups.conf:2: ")


def test_users():
    text = "[admin]\n password = \"p w\"\n password = second\n actions = set fsd\n" \
           " instcmds = ALL\n[mon]\n password=m\n upsmon master\n[sec]\n password = s\n" \
           " upsmon = slave\n allowfrom = 10.0.0.0/8 ::1\n"
    warnings = []
    u = Users.parse(text, warn=warnings.append)
    assert u.check("admin", "p w", action="SET") and u.check("admin", "p w", action="FSD")
    assert not u.check("admin", "second")
    assert u.check("admin", "p w", instcmd="anything")
    assert u.check("mon", "m", action="LOGIN") and u.check("mon", "m", action="FSD")
    assert u.check("sec", "s", action="LOGIN") and not u.check("sec", "s", action="FSD")
    assert u.get("sec").allowfrom == ["10.0.0.0/8", "::1"]
    assert not u.check("nobody", "x") and not u.check("admin", None)
    assert any("second password" in w for w in warnings)
    e = raises(ConfigError, Users.parse, "[a]\n password = x\n[a]\n", "upsd.users")
    assert str(e) == "upsd.users:3: user [a] defined twice"
    e = raises(ConfigError, Users.parse, "password = x\n", "upsd.users")
    assert "outside a [user] section" in str(e)


def test_constant_time_equal():
    assert constant_time_equal("abc", "abc")
    assert not constant_time_equal("abc", "abd")
    assert not constant_time_equal("abc", "abcd")
    assert not constant_time_equal("", "a")


def test_dummy_definition():
    text = ('battery.charge: 100\nups.status: OL CHRG\nups.mfr: "Q \\"x\\""\n'
            "driver.name: usbhid-ups\nTIMER 5\nALARM [hot]\nALARM\nups.alarm:\n"
            "#RW:ups.delay.shutdown:STRING:10\n#RW:output.voltage.nominal:ENUM:\"230\"\n"
            "#CMD:beeper.toggle\n#CMD:load.off\t#BAD: x\n")
    d = parse_definition(text)
    assert d.steps == [("set", "battery.charge", "100"), ("set", "ups.status", "OL CHRG"),
                       ("set", "ups.mfr", 'Q "x"'), ("timer", 5), ("alarm", "[hot]"),
                       ("alarm", None), ("set", "ups.alarm", "")]
    assert d.rw["ups.delay.shutdown"]["len"] == 10
    assert d.rw["output.voltage.nominal"]["enums"] == ["230"]
    assert d.cmds == ["beeper.toggle", "load.off"]
