"""bench/ still builds and runs: nutload compiles, and a short run against
nutapp's own stack (no Debian C stack) produces every figure.

Nothing here judges the numbers; bench/run.py does that, outside the tests.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(TOP, "bench", "run.py")

pytestmark = pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")),
                                reason="bench/ needs a C compiler (Debian's gcc)")


def test_short_run_against_nutapp_produces_numbers(tmp_path):
    out, raw = tmp_path / "latest.md", tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, RUN, "--only", "nutapp", "--duration", "1", "--warmup", "0.2",
         "--repeat", "1", "--lists", "5", "--idle-conns", "50", "--starts", "1",
         "--nice", "0", "--out", str(out), "--json", str(raw)],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr

    metrics = json.loads(raw.read_text())["metrics"]
    for key in ("get_1_rr", "get_1_pipe", "get_50_rr", "get_50_pipe", "list_ms",
                "rss_idle_upsd", "rss_idle_driver", "rss_conns_upsd", "listen_s",
                "serving_s"):
        assert metrics[key]["nutapp"] > 0, key
    # upsd really held the idle connections while its memory was read.
    assert metrics["conns_sockets"]["nutapp"] >= 50

    table = out.read_text()
    assert "| GET VAR req/s, 50 conns, pipelined |" in table
    assert table in proc.stdout
