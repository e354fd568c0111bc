"""The upsmon core runs under MicroPython too: run test_core there."""

import os

import mp_runner

HERE = os.path.dirname(os.path.abspath(__file__))


def test_upsmon_core_under_micropython():
    r = mp_runner.run(HERE, ["test_core"])
    assert r.returncode == 0, r.stdout + r.stderr
    passed = int(r.stdout.strip().splitlines()[-1].split()[1])
    assert passed >= 40, r.stdout
