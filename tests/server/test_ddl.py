"""Every variable of every device dump reaches upsc as NUT's C stack shows it.

All 576 dumps of the Devices Dumps Library are served twice, in batches:
by Debian's dummy-ups + upsd 2.8.0 and by ours, and read with Debian's upsc.
Values with quotes, backslashes or # must come out exactly as NUT's grammar
reads them from the file on both sides.
"""

import difflib
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from nutstack import DDL, Stack, have_debian_nut, strip_noise

pytestmark = [
    pytest.mark.skipif(not have_debian_nut(), reason="Debian's NUT is not installed"),
    pytest.mark.skipif(not DDL.is_dir(), reason="../shared/data/nut-ddl is not present"),
]

DUMPS = sorted(DDL.rglob("*.dev")) + sorted(DDL.rglob("*.seq")) if DDL.is_dir() else []


def _serve_all(tmp_path, kind, batch):
    results = {}
    for start in range(0, len(DUMPS), batch):
        chunk = DUMPS[start:start + batch]
        ups = {"u%03d" % (start + i): (path, "") for i, path in enumerate(chunk)}
        with Stack(tmp_path / ("%s%d" % (kind, start)), ups=ups) as s:
            s.start(server=kind, drivers=kind)

            def read(name, s=s):
                r = subprocess.run(["upsc", s.target(name)], env=s.env, capture_output=True,
                                   text=True, timeout=30)
                return name, r.returncode, strip_noise(r.stdout), strip_noise(r.stderr)

            with ThreadPoolExecutor(8) as pool:
                for name, rc, out, err in pool.map(read, sorted(ups)):
                    results[name] = (rc, out, err)
    return results


EMPTY_VALUE = re.compile(r"^([A-Za-z][\w.-]*):[ \t]*(?:#.*)?$", re.M)
MIRRORS = {"ups.mfr": "device.mfr", "ups.model": "device.model", "ups.serial": "device.serial"}


def expected_from_nut(path, output):
    """NUT's upsc output, corrected for two NUT 2.8.0 faults.

    A variable with an empty value in the file (or only a comment) is
    documented to be deleted; 2.8.0's dummy-ups repeats the previous line's
    value instead (a stale buffer). The device.* mirrors of ups.mfr/model/
    serial then follow the ups.* value, as NUT's main.c copies them after
    reading the file. And driver.parameter.synchronous, which 2.8.0 flips to
    "yes" at run time when its socket buffer fills, is compared as "auto".
    """
    text = path.read_text(errors="replace")
    empty = set(EMPTY_VALUE.findall(text))
    values = {}
    order = []
    for line in output.splitlines():
        name, _, value = line.partition(": ")
        values[name] = value
        order.append(name)
    for name in empty:
        values.pop(name, None)
    for src, dst in MIRRORS.items():
        if src in empty or dst in empty:
            if src in values:
                values[dst] = values[src]
                if dst not in order:
                    order.append(dst)
            else:
                values.pop(dst, None)
    if "driver.parameter.synchronous" in values:
        values["driver.parameter.synchronous"] = "auto"
    names = sorted((n for n in set(order) if n in values), key=str.lower)
    return "\n".join("%s: %s" % (n, values[n]) for n in names)


def test_every_dump_matches_nut(tmp_path):
    assert len(DUMPS) >= 500
    theirs = _serve_all(tmp_path, "debian", 96)
    ours = _serve_all(tmp_path, "ours", 48)
    mismatches = []
    for i, path in enumerate(DUMPS):
        name = "u%03d" % i
        rc, out, err = theirs[name]
        expected = (rc, expected_from_nut(path, out), err)
        got = (ours[name][0], ours[name][1].rstrip("\n"), ours[name][2])
        if got != expected:
            mismatches.append((path.name, expected, got))
    report = "\n".join(
        "%s:\n%s" % (n, "\n".join(difflib.unified_diff(
            (t[1] + t[2]).splitlines(), (o[1] + o[2]).splitlines(), "NUT", "ours", lineterm="",
            n=0)))
        for n, t, o in mismatches)
    if os.environ.get("NUTAPP_DDL_REPORT"):
        with open(os.environ["NUTAPP_DDL_REPORT"], "w") as f:
            f.write(report)
    assert not mismatches, "%d of %d dumps differ; first ones:\n%s" % (
        len(mismatches), len(DUMPS), report)
