import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from stack import Stack, cleanup, make_base  # noqa: E402


@pytest.fixture
def base():
    d = make_base()
    yield d
    cleanup(d)


@pytest.fixture
def stacks(base):
    """Factory: stacks(users=..., upsd_conf=...) -> a written, unstarted Stack;
    every stack made is stopped at the end."""
    made = []

    def make(**kw):
        sub = os.path.join(base, "s%d" % len(made))
        os.makedirs(sub)
        os.chmod(sub, 0o755)
        s = Stack(sub, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


needs_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root (CI runs as root)")
