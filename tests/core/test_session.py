# The session core against NUT's documented replies and check order.
from nutapp.core.config import UpsConf, UpsdConf
from nutapp.core.dstate import DriverState
from nutapp.core.session import Session
from nutapp.core.upsd import Upsd
from nutapp.core.users import Users

USERS = """
[admin]
  password = secret
  actions = SET FSD
  instcmds = ALL
[mon]
  password = monpass
  upsmon primary
[sec]
  password = secpass
  upsmon secondary
[limited]
  password = lim
  instcmds = beeper.enable
"""


def make(now=100.0):
    conf = UpsdConf()
    upsd = Upsd(conf, Users.parse(USERS))
    ids = []

    def make_id():
        ids.append(1)
        return "ID%d" % len(ids)

    upsd.make_id = make_id
    upsd.now = now
    upsd.set_ups_table(list(UpsConf.parse(
        "[Dummy]\n driver = dummy-ups\n port = a.dev\n desc = \"My \\\"UPS\\\"\"\n"
        "[other]\n driver = dummy-ups\n port = b.dev\n").ups.values()))
    d = DriverState()
    d.setinfo("ups.status", "OL")
    d.setinfo("battery.charge", "100")
    d.setinfo("ups.id", 'a "b" \\c #d')
    d.setflags("ups.id", "RW", "STRING")
    d.setaux("ups.id", 8)
    d.setinfo("input.sensitivity", "low")
    d.setflags("input.sensitivity", "RW")
    d.addenum("input.sensitivity", "low")
    d.addenum("input.sensitivity", "high")
    d.setinfo("battery.charge.low", "10")
    d.setflags("battery.charge.low", "RW", "NUMBER")
    d.addrange("battery.charge.low", 5, 50)
    d.addcmd("load.off")
    d.addcmd("beeper.enable")
    d.dataok()
    ups = upsd.get_ups("dummy")
    sent = []
    ups.driver_connected(lambda line: sent.append(line) or True, now)
    for line in d.dump_lines():
        upsd.driver_line(ups, line)
    return upsd, ups, sent


def login(s, user, pw):
    assert s.handle_line("USERNAME " + user) == "OK\n"
    assert s.handle_line("PASSWORD " + pw) == "OK\n"


def test_version_and_help():
    upsd, _, _ = make()
    s = Session(upsd, "127.0.0.1")
    assert s.handle_line("PROTVER") == "1.3\n"
    assert s.handle_line("netver") == "1.3\n"
    assert s.handle_line("VER").startswith("Network UPS Tools upsd ")
    assert s.handle_line("HELP").startswith("Commands: HELP VER PROTVER GET LIST SET")
    assert s.handle_line("HELP me") == "ERR INVALID-ARGUMENT\n"
    assert s.handle_line("") == "ERR UNKNOWN-COMMAND\n"
    assert s.handle_line("BOGUS") == "ERR UNKNOWN-COMMAND\n"


def test_get_var_echoes_spelling_and_escapes():
    upsd, _, _ = make()
    s = Session(upsd, "127.0.0.1")
    assert s.handle_line("get var DUMMY ups.status") == 'VAR DUMMY ups.status "OL"\n'
    assert s.handle_line("GET VAR dummy UPS.STATUS") == 'VAR dummy UPS.STATUS "OL"\n'
    assert s.handle_line("GET VAR dummy ups.id") == 'VAR dummy ups.id "a \\"b\\" \\\\c \\#d"\n'
    assert s.handle_line("GET VAR dummy nosuch") == "ERR VAR-NOT-SUPPORTED\n"
    assert s.handle_line("GET VAR nosuch ups.status") == "ERR UNKNOWN-UPS\n"
    assert s.handle_line("GET VAR other ups.status") == "ERR DRIVER-NOT-CONNECTED\n"
    assert s.handle_line("GET VAR nosuch server.version").startswith("VAR nosuch server.version")
    assert s.handle_line("GET VAR dummy") == "ERR INVALID-ARGUMENT\n"
    assert s.handle_line('GET VAR "dummy') == "ERR INVALID-ARGUMENT\n"


def test_stale_after_maxage_and_datastale():
    upsd, ups, sent = make(now=100.0)
    s = Session(upsd, "127.0.0.1")
    upsd.now = 100.0 + upsd.conf.maxage / 3 + 1
    upsd.tick()
    assert sent[-1] == "PING\n"
    upsd.now = 100.0 + upsd.conf.maxage + 1
    upsd.tick()
    assert s.handle_line("GET VAR dummy ups.status") == "ERR DATA-STALE\n"
    upsd.driver_line(ups, "PONG")
    assert s.handle_line("GET VAR dummy ups.status") == 'VAR dummy ups.status "OL"\n'
    upsd.driver_line(ups, "DATASTALE")
    assert s.handle_line("LIST VAR dummy") == "ERR DATA-STALE\n"
    upsd.driver_line(ups, "DATAOK")
    ups.driver_lost()
    assert s.handle_line("LIST CMD dummy") == "ERR DRIVER-NOT-CONNECTED\n"


def test_type_desc_lists():
    upsd, _, _ = make()
    s = Session(upsd, "127.0.0.1")
    assert s.handle_line("GET TYPE dummy ups.id") == "TYPE dummy ups.id RW STRING:8\n"
    assert s.handle_line("GET TYPE dummy input.sensitivity") == \
        "TYPE dummy input.sensitivity RW ENUM NUMBER\n"
    assert s.handle_line("GET TYPE dummy battery.charge.low") == \
        "TYPE dummy battery.charge.low RW RANGE NUMBER\n"
    assert s.handle_line("GET DESC dummy ups.id") == \
        'DESC dummy ups.id "Description unavailable"\n'
    assert s.handle_line("GET UPSDESC dummy") == 'UPSDESC dummy "My \\"UPS\\""\n'
    assert s.handle_line("GET UPSDESC other") == 'UPSDESC other "Unavailable"\n'
    out = s.handle_line("LIST VAR dummy")
    lines = out.splitlines()
    assert lines[0] == "BEGIN LIST VAR dummy" and lines[-1] == "END LIST VAR dummy"
    assert lines[1] == 'VAR dummy battery.charge "100"'
    assert s.handle_line("LIST RW dummy").splitlines()[1:-1] == [
        'RW dummy battery.charge.low "10"', 'RW dummy input.sensitivity "low"',
        'RW dummy ups.id "a \\"b\\" \\\\c \\#d"']
    assert s.handle_line("LIST CMD dummy") == \
        "BEGIN LIST CMD dummy\nCMD dummy beeper.enable\nCMD dummy load.off\nEND LIST CMD dummy\n"
    assert s.handle_line("LIST ENUM dummy input.sensitivity").splitlines()[1:-1] == [
        'ENUM dummy input.sensitivity "low"', 'ENUM dummy input.sensitivity "high"']
    assert s.handle_line("LIST RANGE dummy battery.charge.low") == (
        "BEGIN LIST RANGE dummy battery.charge.low\n"
        'RANGE dummy battery.charge.low "5" "50"\n'
        "END LIST RANGE dummy battery.charge.low\n")
    assert s.handle_line("LIST UPS") == ('BEGIN LIST UPS\nUPS Dummy "My \\"UPS\\""\n'
                                         'UPS other "Description unavailable"\nEND LIST UPS\n')
    assert s.handle_line("LIST ENUM dummy nosuch") == "ERR VAR-NOT-SUPPORTED\n"
    assert s.handle_line("LIST BOGUS dummy x") == "ERR INVALID-ARGUMENT\n"


def test_auth_needed_and_order():
    upsd, _, sent = make()
    s = Session(upsd, "127.0.0.1")
    assert s.handle_line("LOGIN dummy") == "ERR USERNAME-REQUIRED\n"
    assert s.handle_line("USERNAME admin") == "OK\n"
    assert s.handle_line("USERNAME admin") == "ERR ALREADY-SET-USERNAME\n"
    assert s.handle_line("INSTCMD dummy load.off") == "ERR PASSWORD-REQUIRED\n"
    assert s.handle_line("PASSWORD wrong") == "OK\n"
    assert s.handle_line("PASSWORD wrong") == "ERR ALREADY-SET-PASSWORD\n"
    assert s.handle_line("INSTCMD dummy load.off") == "ERR ACCESS-DENIED\n"
    assert s.handle_line("INSTCMD dummy nosuch.cmd") == "ERR CMD-NOT-SUPPORTED\n"
    assert s.handle_line("INSTCMD nosuch load.off") == "ERR UNKNOWN-UPS\n"
    assert not sent


def test_set_checks_in_nut_order():
    upsd, _, sent = make()
    s = Session(upsd, "127.0.0.1")
    login(s, "admin", "secret")
    assert s.handle_line('SET VAR dummy battery.charge "5"') == "ERR READONLY\n"
    assert s.handle_line('SET VAR dummy nosuch "5"') == "ERR VAR-NOT-SUPPORTED\n"
    assert s.handle_line('SET VAR dummy ups.id "123456789"') == "ERR TOO-LONG\n"
    assert s.handle_line('SET VAR dummy input.sensitivity "medium"') == "ERR INVALID-VALUE\n"
    assert s.handle_line('SET VAR dummy battery.charge.low "60"') == "ERR INVALID-VALUE\n"
    assert s.handle_line('SET VAR dummy battery.charge.low "20"') == "OK\n"
    assert sent[-1] == 'SET battery.charge.low "20"\n'
    assert s.handle_line('SET VAR dummy ups.id "a#b"') == "ERR INVALID-ARGUMENT\n"
    assert s.handle_line('SET VAR dummy ups.id "a\\#\\"b"') == "OK\n"
    assert sent[-1] == 'SET ups.id "a\\#\\"b"\n'
    s2 = Session(upsd, "127.0.0.2")
    login(s2, "mon", "monpass")
    assert s2.handle_line('SET VAR dummy battery.charge.low "20"') == "ERR ACCESS-DENIED\n"


def test_instcmd_permissions_and_tracking():
    upsd, ups, sent = make()
    s = Session(upsd, "127.0.0.1")
    login(s, "limited", "lim")
    assert s.handle_line("INSTCMD dummy load.off") == "ERR ACCESS-DENIED\n"
    assert s.handle_line("INSTCMD dummy BEEPER.ENABLE") == "OK\n"
    assert sent[-1] == "INSTCMD BEEPER.ENABLE\n"
    assert s.handle_line("GET TRACKING") == "OFF\n"
    assert s.handle_line("GET TRACKING ID1") == "ERR FEATURE-NOT-CONFIGURED\n"
    assert s.handle_line("SET TRACKING ON") == "OK\n"
    r = s.handle_line('INSTCMD dummy beeper.enable "5"')
    assert r.startswith("OK TRACKING ")
    tid = r.split()[2]
    assert sent[-1] == 'INSTCMD beeper.enable "5" TRACKING %s\n' % tid
    assert s.handle_line("GET TRACKING " + tid) == "PENDING\n"
    upsd.driver_line(ups, "TRACKING %s 0" % tid)
    assert s.handle_line("GET TRACKING " + tid) == "SUCCESS\n"
    upsd.driver_line(ups, "TRACKING %s 3" % tid)
    assert s.handle_line("GET TRACKING " + tid) == "ERR FAILED\n"
    assert s.handle_line("GET TRACKING nosuch") == "ERR UNKNOWN\n"
    assert s.handle_line("SET TRACKING maybe") == "ERR INVALID-ARGUMENT\n"


def test_login_numlogins_primary_fsd_clients():
    upsd, ups, _ = make()
    a = Session(upsd, "10.0.0.1")
    login(a, "mon", "monpass")
    assert a.handle_line("LOGIN nosuch") == "ERR UNKNOWN-UPS\n"
    assert a.handle_line("LOGIN dummy") == "OK\n"
    assert a.handle_line("LOGIN dummy") == "ERR ALREADY-LOGGED-IN\n"
    assert a.handle_line("PRIMARY dummy") == "OK PRIMARY-GRANTED\n"
    assert a.handle_line("MASTER dummy") == "OK MASTER-GRANTED\n"
    b = Session(upsd, "10.0.0.2")
    login(b, "sec", "secpass")
    assert b.handle_line("LOGIN Dummy") == "OK\n"
    assert b.handle_line("PRIMARY dummy") == "ERR ACCESS-DENIED\n"
    assert b.handle_line("FSD dummy") == "ERR ACCESS-DENIED\n"
    c = Session(upsd, "10.0.0.3")
    login(c, "viewer_missing", "x")
    assert c.handle_line("LOGIN dummy") == "ERR ACCESS-DENIED\n"
    assert a.handle_line("GET NUMLOGINS dummy") == "NUMLOGINS dummy 2\n"
    assert a.handle_line("LIST CLIENT dummy") == (
        "BEGIN LIST CLIENT dummy\nCLIENT Dummy 10.0.0.1\nCLIENT Dummy 10.0.0.2\n"
        "END LIST CLIENT dummy\n")
    assert a.handle_line("FSD dummy") == "OK FSD-SET\n"
    assert a.handle_line("GET VAR dummy ups.status") == 'VAR dummy ups.status "FSD OL"\n'
    assert 'VAR dummy ups.status "FSD OL"' in a.handle_line("LIST VAR dummy")
    b.close()
    assert a.handle_line("GET NUMLOGINS dummy") == "NUMLOGINS dummy 1\n"
    assert a.handle_line("LOGOUT") == "OK Goodbye\n" and a.closing
    a.close()
    assert ups.numlogins == 0


def test_failed_logins_are_throttled_per_source():
    upsd, _, _ = make()
    for i in range(upsd.throttle.limit):
        s = Session(upsd, "192.0.2.9")
        login(s, "admin", "guess%d" % i)
        assert s.handle_line("FSD dummy") == "ERR ACCESS-DENIED\n"
        s.close()
    s = Session(upsd, "192.0.2.9")
    login(s, "admin", "secret")  # right password, but the source is blocked
    assert s.handle_line("FSD dummy") == "ERR ACCESS-DENIED\n"
    other = Session(upsd, "192.0.2.10")
    login(other, "admin", "secret")
    assert other.handle_line("FSD dummy") == "OK FSD-SET\n"
    upsd.now += upsd.throttle.lockout + 1
    s2 = Session(upsd, "192.0.2.9")
    login(s2, "admin", "secret")
    assert s2.handle_line("FSD dummy") == "OK FSD-SET\n"


def test_starttls_rules_and_require_tls():
    upsd, _, _ = make()
    s = Session(upsd, "127.0.0.1")
    assert s.handle_line("STARTTLS") == "ERR FEATURE-NOT-CONFIGURED\n"
    upsd.tls_available = True
    t = Session(upsd, "127.0.0.1")
    assert t.handle_line("STARTTLS") == "OK STARTTLS\n" and t.start_tls
    t.tls = True
    assert t.handle_line("STARTTLS") == "ERR ALREADY-SSL-MODE\n"
    u = Session(upsd, "127.0.0.1")
    u.handle_line("USERNAME admin")
    assert u.handle_line("STARTTLS") == "ERR INVALID-ARGUMENT\n"
    upsd.require_tls = True
    v = Session(upsd, "127.0.0.1")
    assert v.handle_line("USERNAME admin") == "ERR ACCESS-DENIED\n"
    v.tls = True
    assert v.handle_line("USERNAME admin") == "OK\n"


def test_allowfrom_hook():
    upsd, _, _ = make()
    upsd.users.get("admin").allowfrom = ["192.168.1.0/24"]
    upsd.addr_allowed = lambda user, addr: addr.startswith("192.168.1.")
    s = Session(upsd, "10.1.1.1")
    login(s, "admin", "secret")
    assert s.handle_line("FSD dummy") == "ERR ACCESS-DENIED\n"
    t = Session(upsd, "192.168.1.20")
    login(t, "admin", "secret")
    assert t.handle_line("FSD dummy") == "OK FSD-SET\n"
