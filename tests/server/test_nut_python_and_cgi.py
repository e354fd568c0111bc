"""NUT's own other clients against our upsd: PyNUT (Debian's python3-nut,
the client library NUT ships and NUT-Monitor uses) and the CGI status page
upsstats.cgi (nut-cgi). Each must get from our stack exactly what it gets
from Debian's C stack serving the same dump, errors included.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nutstack import Stack, have_debian_nut

PYNUT = Path("/usr/lib/python3/dist-packages/PyNUT.py")
UPSSTATS = Path("/usr/lib/cgi-bin/nut/upsstats.cgi")
TEMPLATES = ("upsstats.html", "upsstats-single.html")

pytestmark = pytest.mark.skipif(not have_debian_nut(), reason="Debian's nut-server is not "
                                "installed (./build.sh installs it)")

# Run by Debian's python3 (PyNUT lives in its dist-packages, not in .venv).
# Every call's result or error, in order, as JSON.
PYNUT_SESSION = r'''
import json, sys
from PyNUT import PyNUTClient, PyNUTError
port = int(sys.argv[1])

def text(v):
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, dict):
        return {text(k): text(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [text(x) for x in v]
    return v

out = []
def call(client, name, *args):
    try:
        out.append([name, args, "ok", text(getattr(client, name)(*args))])
    except PyNUTError as e:
        out.append([name, args, "error", text(e.args)])

anon = PyNUTClient("127.0.0.1", port)
for name, args in (("GetUPSList", ()), ("GetUPSVars", ("dummy",)),
                   ("GetUPSCommands", ("dummy",)), ("GetRWVars", ("dummy",)),
                   ("help", ()), ("SetRWVar", ("dummy", "ups.delay.shutdown", "30")),
                   ("RunUPSCommand", ("dummy", "load.off")), ("GetUPSVars", ("nosuch",))):
    call(anon, name, *args)
admin = PyNUTClient("127.0.0.1", port, "admin", "adminpass")
call(admin, "SetRWVar", "dummy", "ups.delay.shutdown", "45")
call(admin, "RunUPSCommand", "dummy", "load.off")
call(admin, "FSD", "dummy")
primary = PyNUTClient("127.0.0.1", port, "monprimary", "primarypass")
call(primary, "FSD", "dummy")
print(json.dumps(out))
'''


def pynut_session(port):
    r = subprocess.run(["/usr/bin/python3", "-W", "ignore", "-c", PYNUT_SESSION, str(port)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(not PYNUT.exists(), reason="python3-nut is not installed")
def test_pynut_gets_what_nut_c_gives(tmp_path):
    seen = {}
    for kind in ("debian", "ours"):
        with Stack(tmp_path / kind) as s:
            s.start(server=kind, drivers=kind)
            seen[kind] = pynut_session(s.port)
    ours = {tuple([c[0]] + c[1]): c[2:] for c in seen["ours"]}
    assert ours[("GetUPSVars", "dummy")][1]["ups.status"] == "OL DISCHRG"
    assert ours[("SetRWVar", "dummy", "ups.delay.shutdown", "45")] == ["ok", "OK"]
    assert ours[("RunUPSCommand", "dummy", "load.off")] == ["ok", "OK"]
    # admin may FSD, but only a upsmon primary may say PRIMARY first, as PyNUT does
    assert [c[2] for c in seen["ours"] if c[0] == "FSD"] == ["error", "ok"]
    for ours_call, c_call in zip(seen["ours"], seen["debian"]):
        if ours_call[0] == "help":
            # NUT 2.8.3 added PROTVER to HELP (it answered PROTVER before);
            # we answer as current NUT does.
            c_call[3] = c_call[3].replace("HELP VER GET", "HELP VER PROTVER GET")
        assert ours_call == c_call
    assert len(seen["ours"]) == len(seen["debian"])


def upsstats(query, confdir):
    """upsstats.cgi's page. NUT 2.8.0's CGI reads hosts.conf and its
    templates from the compiled-in /etc/nut whatever NUT_CONFPATH says, so
    it runs in a private mount namespace where /etc/nut is `confdir`."""
    env = dict(os.environ, REQUEST_METHOD="GET", QUERY_STRING=query,
               SERVER_NAME="localhost", SCRIPT_NAME="/cgi-bin/nut/upsstats.cgi")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount --bind "$0" /etc/nut && exec "$1"', str(confdir),
                        str(UPSSTATS)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.skipif(not UPSSTATS.exists(), reason="nut-cgi is not installed")
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="a private /etc/nut needs root and unshare")
def test_upsstats_cgi_shows_what_nut_c_shows(tmp_path):
    pages = {}
    for kind in ("debian", "ours"):
        with Stack(tmp_path / kind) as s:
            s.start(server=kind, drivers=kind)
            cgi = tmp_path / kind / "cgi"
            cgi.mkdir(parents=True)
            for name in TEMPLATES:
                shutil.copy(Path("/etc/nut") / name, cgi / name)
            # One port for both runs' pages to compare: the stack's, named here.
            host = "dummy@127.0.0.1:%d" % s.port
            (cgi / "hosts.conf").write_text('MONITOR %s "Rack UPS"\n' % host)
            overview = upsstats("", cgi)
            single = upsstats("host=" + host, cgi)
            pages[kind] = [re.sub(r"127\.0\.0\.1:%d" % s.port, "HOST", page)
                           for page in (overview, single)]
    for page in pages["ours"] + pages["debian"]:
        assert "Rack UPS" in page
    for ours, theirs in zip(pages["ours"], pages["debian"]):
        # The pages carry the time they were made.
        clock = re.compile(r"\b\d{1,2}:\d\d:\d\d\b|\b\d{4}-\d\d-\d\d\b|\b\w{3} \w{3} +\d+\b")
        assert clock.sub("T", ours) == clock.sub("T", theirs)
    single = re.sub(r"<[^>]*>", " ", pages["ours"][1])
    assert re.search(r"Status:\s+ONLINE\s", single), single
    assert re.search(r"Battery:\s+13\.5 V", single), single
