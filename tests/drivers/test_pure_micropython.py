"""The drivers' pure modules under both interpreters, and free of I/O."""

import os

import pytest

import mp_pure
import mp_runner

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PURE = ("qx_protocol.py", "gpio_rules.py", "hats.py")


@pytest.mark.parametrize("name", sorted(n for n in dir(mp_pure) if n.startswith("test_")))
def test_under_cpython(name):
    getattr(mp_pure, name)()


def test_under_micropython():
    r = mp_runner.run(HERE, ["mp_pure"])
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
