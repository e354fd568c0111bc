from nutapp.core.dstate import DriverState, parse_server_request
from nutapp.core.state import UpsState, apply_sock_words, RW, STRING
from nutapp.core.parseconf import split_line


def test_case_insensitive_sorted_and_versioned():
    s = UpsState()
    v0 = s.version
    s.setinfo("ups.Status", "OL")
    s.setinfo("battery.charge", "100")
    s.setinfo("Input.voltage", "230")
    assert s.getinfo("UPS.STATUS") == "OL"
    assert [v.name for v in s.sorted_vars()] == ["battery.charge", "Input.voltage", "ups.Status"]
    assert s.version > v0
    v1 = s.version
    assert not s.setinfo("ups.status", "OL")
    assert s.version == v1


def test_commands_sorted_case_insensitively():
    s = UpsState()
    for c in ("test.battery.start", "Beeper.enable", "load.off"):
        s.addcmd(c)
    assert not s.addcmd("LOAD.OFF")
    assert s.sorted_cmds() == ["Beeper.enable", "load.off", "test.battery.start"]


def test_sock_protocol_applies():
    s = UpsState()
    for line in ['SETINFO ups.delay.shutdown "20"', "SETFLAGS ups.delay.shutdown RW STRING",
                 "SETAUX ups.delay.shutdown 10", 'ADDENUM input.sensitivity "low"',
                 'SETINFO input.sensitivity "high"', 'ADDENUM input.sensitivity "low"',
                 'ADDENUM input.sensitivity "high"', "ADDRANGE battery.charge.low 5 90",
                 'SETINFO battery.charge.low "10"', "ADDRANGE battery.charge.low 5 90",
                 "ADDCMD load.off", "DELCMD load.off", "ADDCMD beeper.on"]:
        apply_sock_words(s, split_line(line, 0, 0))
    v = s.get("ups.delay.shutdown")
    assert v.flags == RW | STRING and v.aux == 10
    assert s.get("input.sensitivity").enums == ["low", "high"]
    assert s.get("battery.charge.low").ranges == [(5, 90)]
    assert s.sorted_cmds() == ["beeper.on"]
    assert not apply_sock_words(s, ["DATAOK"])
    apply_sock_words(s, ["DELINFO", "input.sensitivity"])
    assert s.get("input.sensitivity") is None


def test_driver_state_pending_and_dump():
    d = DriverState()
    d.setinfo("ups.status", "OL")
    d.setinfo("ups.mfr", 'Quote "me" \\ # ok')
    d.setflags("ups.mfr", "RW", "STRING")
    d.setaux("ups.mfr", 32)
    d.addcmd("load.off")
    d.dataok()
    pending = d.take_pending()
    assert pending[0] == 'SETINFO ups.status "OL"'
    assert pending[1] == 'SETINFO ups.mfr "Quote \\"me\\" \\\\ \\# ok"'
    assert pending[-1] == "DATAOK"
    assert d.take_pending() == []
    dump = d.dump_lines()
    assert dump[-2:] == ["DATAOK", "DUMPDONE"]
    assert dump.index('SETINFO ups.mfr "Quote \\"me\\" \\\\ \\# ok"') < dump.index(
        "SETFLAGS ups.mfr RW STRING")
    # The server side decodes the escaped value back exactly.
    s = UpsState()
    for line in dump:
        apply_sock_words(s, split_line(line, 0, 0))
    assert s.getinfo("ups.mfr") == 'Quote "me" \\ # ok'


def test_stale_dump_starts_with_datastale():
    d = DriverState()
    d.setinfo("ups.status", "OB")
    assert d.dump_lines()[0] == "DATASTALE"
    assert "DATAOK" not in d.dump_lines()


def test_status_alarm_override_default_ignorelb():
    d = DriverState()
    d.alarm_init()
    d.alarm_set("Replace battery!")
    d.alarm_commit()
    d.status_init()
    d.status_set("OL")
    d.status_set("CHRG OL")
    d.status_commit()
    assert d.getinfo("ups.status") == "ALARM OL CHRG"
    assert d.getinfo("ups.alarm") == "Replace battery!"
    d.alarm_init()
    d.alarm_commit()
    assert d.getinfo("ups.alarm") is None
    d.set_override("battery.charge", "42")
    d.setinfo("battery.charge", "99")
    assert d.getinfo("battery.charge") == "42"
    d.set_default("battery.runtime", "600")
    d.set_default("battery.runtime", "700")
    assert d.getinfo("battery.runtime") == "600"
    d.ignorelb = True
    d.setinfo("battery.charge.low", "50")
    d.status_init()
    d.status_set("OB LB")
    d.status_commit()
    assert d.getinfo("ups.status") == "OB LB"  # charge 42 < 50: LB computed
    d.set_override("battery.charge", "80")
    d.status_init()
    d.status_set("OB LB")
    d.status_commit()
    assert d.getinfo("ups.status") == "OB"  # device's LB ignored


def test_server_requests():
    assert parse_server_request(["PING"]) == ("PING",)
    assert parse_server_request(["INSTCMD", "load.off"]) == ("INSTCMD", "load.off", None, None)
    assert parse_server_request(["INSTCMD", "x", "5", "TRACKING", "ID1"]) == (
        "INSTCMD", "x", "5", "ID1")
    assert parse_server_request(["SET", "v", "1"]) == ("SET", "v", "1", None)
    assert parse_server_request(["SET", "v"]) is None
    assert parse_server_request(["BOGUS"]) is None
