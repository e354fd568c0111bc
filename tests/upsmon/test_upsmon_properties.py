"""Properties of upsmon's decisions over generated outages (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from nutapp.core.upsmon import Upsmon, parse_config

HARMLESS = ["", " CHRG", " DISCHRG", " TRIM", " BOOST", " RB", " HB", " OVER"]


def machine(monitors, extra=""):
    return Upsmon(parse_config(monitors + "POLLFREQ 5\nPOLLFREQALERT 1\nHOSTSYNC 10\n"
                               "DEADTIME 15\nFINALDELAY 3\n" + extra))


def drastic(actions):
    return [a for a in actions if a.kind in ("set_fsd", "shutdown")
            or (a.kind == "notify" and a.ntype in ("SHUTDOWN", "SHUTDOWN_HOSTSYNC"))]


# A poll: seconds since the previous one, then a status (None: no answer).
on_line_polls = st.lists(
    st.tuples(st.floats(0.1, 400), st.one_of(st.none(),
                                              st.sampled_from(["OL" + w for w in HARMLESS]))),
    max_size=60)


@settings(max_examples=80, deadline=None)
@given(st.lists(on_line_polls, min_size=1, max_size=3), st.sampled_from(["primary", "secondary"]),
       st.integers(1, 3))
def test_never_shuts_down_while_every_supply_is_on_line(per_ups, kind, minsupplies):
    monitors = "".join("MONITOR u%d@h 1 mon pass %s\n" % (i, kind) for i in range(3))
    m = machine(monitors, "MINSUPPLIES %d\n" % minsupplies)
    t = 0.0
    for step in range(max(len(p) for p in per_ups)):
        for i, polls in enumerate(per_ups):
            if step >= len(polls):
                continue
            dt, status = polls[step]
            t += dt
            name = "u%d@h" % i
            out = m.poll_failed(name, t, "refused") if status is None else \
                m.poll_ok(name, t, status)
            assert drastic(out) == []
        assert drastic(m.recalc(t)) == []
        assert m.phase == "monitor"


outage = st.lists(st.tuples(st.floats(0.1, 120),
                            st.sampled_from(["OB", "OB DISCHRG", "OL", "OL CHRG", "OB TRIM",
                                             "OB BOOST", "OL RB"])),
                  max_size=80)


@settings(max_examples=80, deadline=None)
@given(outage, st.sampled_from(["primary", "secondary"]), st.integers(0, 10))
def test_power_back_before_low_battery_never_shuts_down(polls, kind, oblb):
    m = machine("MONITOR u@h 1 mon pass %s\n" % kind, "OBLBDURATION %d\n" % oblb)
    t = 0.0
    for dt, status in polls:
        t += min(dt, 14)  # answered within DEADTIME each time
        assert drastic(m.poll_ok("u@h", t, status) + m.recalc(t)) == []
    assert m.phase == "monitor"


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 60), st.integers(0, 30), st.integers(0, 20), st.integers(1, 5),
       st.lists(st.integers(2, 5), max_size=200))
def test_primary_on_low_battery_always_powers_down_in_bounded_time(hostsync, finaldelay, oblb,
                                                                     alert, logins):
    m = Upsmon(parse_config(
        "MONITOR u@h 1 mon pass primary\nPOLLFREQALERT %d\nHOSTSYNC %d\nFINALDELAY %d\n"
        "OBLBDURATION %d\n" % (alert, hostsync, finaldelay, oblb)))
    t, fsd_at, done_at = 0.0, None, None
    logins = list(logins)
    while t < 1000 and done_at is None:
        if m.phase == "monitor":
            out = m.poll_ok("u@h", t, "OB LB") + m.recalc(t)
            if any(a.kind == "set_fsd" for a in out):
                fsd_at = t
        elif m.phase == "hostsync":
            out = m.numlogins({"u@h": logins.pop(0) if logins else 2}, t) + m.tick(t)
        else:
            out = m.tick(t)
        if any(a.kind == "shutdown" for a in out):
            done_at = t
        t += m.interval(t)
    assert fsd_at is not None and fsd_at <= oblb + alert
    assert done_at is not None and done_at <= fsd_at + hostsync + finaldelay + 1


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.lists(st.floats(0.1, 5), max_size=40))
def test_secondary_waits_hostsync_for_the_primary(hostsync, gaps):
    m = machine("MONITOR u@h 1 mon pass secondary\n", "HOSTSYNC %d\n" % hostsync)
    m.poll_ok("u@h", 0, "OB")
    t = 1.0
    m.poll_ok("u@h", t, "OB LB")
    start = t
    for gap in gaps:
        t += gap
        out = m.poll_ok("u@h", t, "OB LB") + m.recalc(t)
        if t - start <= hostsync:
            assert drastic(out) == []
        elif drastic(out):
            break
