"""Fixtures of the provisioning tests (helpers in provision_helpers.py)."""

import os
import shutil

import pytest

from provision_helpers import Box, Netns


@pytest.fixture
def box(tmp_path):
    return Box(str(tmp_path))


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    ns = Netns()
    try:
        yield ns
    finally:
        ns.close()

