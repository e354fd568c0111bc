"""`pip install .` from a work tree as developers leave it.

Building the image leaves a Debian root tree under out/ whose links
(dev/fd -> /proc/self/fd, ...) loop and lead out of it; setuptools' package search must not
walk into it, or `./build.sh test` hangs at its set-up step after a
pyproject.toml change. The wheel built must hold nutapp and nothing else.
"""

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]


def tracked_files():
    r = subprocess.run(["git", "-C", str(TOP), "ls-files", "-z"], capture_output=True)
    if r.returncode != 0:
        pytest.skip("not a git work tree")
    return [p for p in r.stdout.decode().split("\0") if p]


def test_wheel_builds_beside_an_image_root_tree(tmp_path):
    src = tmp_path / "src"
    for rel in tracked_files():
        if (TOP / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TOP / rel, src / rel)
    root = src / "out" / "cache" / "kit" / "dev"
    root.mkdir(parents=True)
    os.symlink("/proc/self/fd", root / "fd")
    os.symlink("../..", root / "up")  # a loop back to the tree's own top
    os.symlink("/proc/self/root", root / "host")  # and out to the whole machine
    dist = tmp_path / "dist"
    pip = subprocess.Popen([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "-w", str(dist), str(src)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = pip.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(pip.pid, signal.SIGKILL)  # pip's build backend runs in a child
        pip.communicate()
        pytest.fail("building the wheel did not finish: the package search walks out/")
    assert pip.returncode == 0, out
    (wheel,) = dist.glob("nutapp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"nutapp", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    for module in ("nutapp/cli.py", "nutapp/core/session.py", "nutapp/server/upsd.py",
                   "nutapp/drivers/usbhid/__init__.py", "nutapp/provision/main.py"):
        assert module in names
    py = sum(1 for n in names if n.endswith(".py"))
    tracked = tracked_files()
    assert py == sum(1 for p in tracked if p.startswith("nutapp/") and p.endswith(".py"))
