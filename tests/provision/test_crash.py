"""Power loss at any moment: provisioning is killed (SIGKILL) before each
of its file system steps in turn, and every time the services see exactly
the old or the new configuration, no secret is lost, and the next run
finishes the job."""

import os
import shutil
import signal
import subprocess
import tempfile

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from nutapp.passwords import hash_password
from nutapp.provision import tls

from provision_helpers import Box, snapshot

OLD = """\
[system]
hostname = old-nut

[ups myups]
driver = auto

[user admin]
role = admin
password = %s
""" % hash_password("adminpass1")

NEW = """\
[system]
hostname = new-nut
allow = 10.1.0.0/16

[wifi]
ssid = Shed
psk = shed-wifi-pass
country = DE

[ups myups]
driver = auto

[ups second]
driver = nutdrv_qx
port = /dev/ttyUSB0

[user admin]
role = admin
password = %s

[user mon]
role = secondary
password = %s
""" % (hash_password("adminpass2"), hash_password("monpass123"))


def _kill_at(box, step):
    """Run provisioning in a child killed before step `step`; its status."""
    pid = os.fork()
    if pid == 0:
        def hook(n, what):
            if n == step:
                os.kill(os.getpid(), signal.SIGKILL)
        try:
            rc = box.run(step_hook=hook)
        finally:
            os._exit(99)
        os._exit(rc)  # pragma: no cover
    _, status = os.waitpid(pid, 0)
    return status


PARTS = ("boot", "data", "etc-nut")


def _restore(src, dst):
    """Copy the box's folders from `src` to `dst`, owners, modes and links kept."""
    os.makedirs(dst, exist_ok=True)
    for part in PARTS:
        subprocess.run(["rm", "-rf", os.path.join(dst, part)], check=True)
        if os.path.lexists(os.path.join(src, part)):
            subprocess.run(["cp", "-a", os.path.join(src, part), dst], check=True)


def _boot_view(box):
    view = snapshot(box.boot)
    view.pop("IMPORTED.txt", None)  # carries the time of the run
    return view


@pytest.fixture
def shm_path(tmp_path):
    """A folder in RAM when there is one: the test runs ~40 provisionings
    and their fsyncs, which on a disk only make it slow."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        path = tempfile.mkdtemp(prefix="nutapp-crash-", dir="/dev/shm")
        yield path
        shutil.rmtree(path)
    else:
        yield str(tmp_path)


@pytest.mark.root
@pytest.mark.parametrize("first", [False, True], ids=["update", "first-start"])
def test_killed_at_every_step(shm_path, first):
    if os.geteuid() != 0:
        pytest.skip("cp -a must keep the nut group: run as root")
    box = Box(os.path.join(shm_path, "box"))
    top = os.path.join(shm_path, "box")
    tmp_path = shm_path

    if not first:
        box.put("nutapp.conf", OLD)
        assert box.run() == 0
    old_config = snapshot(box.etc)  # {} on the first start: nothing installed

    key = ec.generate_private_key(ec.SECP256R1())
    cert = tls.make_certificate(key, "new-nut")
    box.put("nutapp.conf", NEW)
    box.put("upsd.crt", tls.cert_pem(cert))
    box.put("upsd.key", tls.key_pem(key))
    box.put("upsmon.conf", "MONITOR myups@localhost 1 admin adminpass2 primary\n")
    pristine = os.path.join(tmp_path, "pristine")
    _restore(top, pristine)

    steps = []
    assert box.run(step_hook=lambda n, what: steps.append(what)) == 0
    new_config, new_boot = snapshot(box.etc), _boot_view(box)
    assert new_config != old_config
    assert "new-nut" in new_config["system/hostname"][4].decode()
    assert not box.has("upsd.key") and not box.has("upsmon.conf")
    assert len(steps) > 20

    seen_old = seen_new = 0
    for step in range(1, len(steps) + 1):
        _restore(pristine, top)
        status = _kill_at(box, step)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, step

        config = snapshot(box.etc)
        assert config in (old_config, new_config), "mixed after a kill at %d: %s" % (
            step, steps[step - 1])
        seen_old += config == old_config
        seen_new += config == new_config
        # A secret leaves the boot folder only once it is installed.
        text = box.boot_text("nutapp.conf")
        if not box.has("upsd.key") or not box.has("upsmon.conf") or "shed-wifi" not in text:
            assert config == new_config, step

        assert box.run() == 0, step
        assert snapshot(box.etc) == new_config, step
        assert _boot_view(box) == new_boot, step
        # And once finished, it stays finished.
        assert box.run(step_hook=lambda n, what: pytest.fail(what)) == 0
    assert seen_old and seen_new  # the kills did land on both sides of the switch
