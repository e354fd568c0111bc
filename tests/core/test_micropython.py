"""The pure core must also run under MicroPython: run its tests there."""

import os

import mp_runner

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORE_TESTS = ["test_parseconf", "test_state", "test_session", "test_config"]


def test_core_under_micropython():
    r = mp_runner.run(HERE, CORE_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    passed = int(r.stdout.strip().splitlines()[-1].split()[1])
    assert passed >= 30, r.stdout


def test_no_forbidden_imports_in_core():
    """Sockets, clocks, logging and threads stay out of the core."""
    forbidden = ("socket", "time", "logging", "asyncio", "threading", "subprocess",
                 "typing", "dataclasses", "enum", "os")
    core = os.path.join(REPO, "nutapp", "core")
    for name in os.listdir(core):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(core, name)) as f:
            for line in f:
                s = line.strip()
                for mod in forbidden:
                    assert not s.startswith(("import %s" % mod, "from %s " % mod)), (name, s)
