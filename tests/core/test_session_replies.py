# Remembered GET VAR replies: a repeat is answered from the session's memory
# only while the UPS, its driver link, staleness, FSD and state are unchanged.
from nutapp.core.config import UpsConf, UpsdConf
from nutapp.core.session import MAX_REMEMBERED, Session
from nutapp.core.upsd import Upsd
from nutapp.core.users import Users

UPS_CONF = "[Dummy]\n driver = dummy-ups\n port = a.dev\n"


def make():
    upsd = Upsd(UpsdConf(), Users())
    upsd.now = 100.0
    upsd.set_ups_table(list(UpsConf.parse(UPS_CONF).ups.values()))
    ups = upsd.get_ups("dummy")
    ups.driver_connected(lambda line: True, upsd.now)
    for line in ('SETINFO ups.status "OL"', 'SETINFO battery.charge "100"', "DATAOK",
                 "DUMPDONE"):
        upsd.driver_line(ups, line)
    return upsd, ups, Session(upsd, "127.0.0.1")


def test_repeat_is_remembered_and_identical():
    upsd, ups, s = make()
    first = s.handle_line("GET VAR dummy ups.status")
    assert first == 'VAR dummy ups.status "OL"\n'
    assert "GET VAR dummy ups.status" in s.var_replies
    assert s.handle_line("GET VAR dummy ups.status") == first
    # The client's spelling is echoed, so each spelling is its own entry.
    assert s.handle_line("GET VAR DUMMY ups.status") == 'VAR DUMMY ups.status "OL"\n'


def test_state_change_is_seen():
    upsd, ups, s = make()
    s.handle_line("GET VAR dummy ups.status")
    upsd.driver_line(ups, 'SETINFO ups.status "OB LB"')
    assert s.handle_line("GET VAR dummy ups.status") == 'VAR dummy ups.status "OB LB"\n'
    upsd.driver_line(ups, "DELINFO ups.status")
    assert s.handle_line("GET VAR dummy ups.status") == "ERR VAR-NOT-SUPPORTED\n"


def test_stale_lost_and_fsd_are_seen():
    upsd, ups, s = make()
    s.handle_line("GET VAR dummy ups.status")
    upsd.driver_line(ups, "DATASTALE")
    assert s.handle_line("GET VAR dummy ups.status") == "ERR DATA-STALE\n"
    upsd.driver_line(ups, "DATAOK")
    s.handle_line("GET VAR dummy ups.status")
    ups.driver_lost()
    assert s.handle_line("GET VAR dummy ups.status") == "ERR DRIVER-NOT-CONNECTED\n"

    upsd, ups, s = make()
    s.handle_line("GET VAR dummy ups.status")
    ups.fsd = True
    assert s.handle_line("GET VAR dummy ups.status") == 'VAR dummy ups.status "FSD OL"\n'


def test_removed_ups_is_seen():
    upsd, ups, s = make()
    s.handle_line("GET VAR dummy ups.status")
    upsd.set_ups_table([])
    assert s.handle_line("GET VAR dummy ups.status") == "ERR UNKNOWN-UPS\n"
    # Declared again: a new, not yet connected UPS object.
    upsd.set_ups_table(list(UpsConf.parse(UPS_CONF).ups.values()))
    assert s.handle_line("GET VAR dummy ups.status") == "ERR DRIVER-NOT-CONNECTED\n"


def test_errors_and_server_vars_are_not_remembered():
    upsd, ups, s = make()
    s.handle_line("GET VAR dummy nosuch.var")
    s.handle_line("GET VAR dummy server.version")
    s.handle_line("GET VAR dummy ups.status extra")
    assert s.var_replies == {}


def test_memory_is_bounded():
    upsd, ups, s = make()
    for i in range(MAX_REMEMBERED * 3):
        upsd.driver_line(ups, 'SETINFO test.v%d "%d"' % (i, i))
        assert s.handle_line("GET VAR dummy test.v%d" % i) == 'VAR dummy test.v%d "%d"\n' % (i, i)
        assert len(s.var_replies) <= MAX_REMEMBERED
