"""The appliance image, booted in QEMU (virt board, Cortex-A53, emulated).

Builds out/nutapp-<version>-qemu.img with board/debian/build-image.sh unless
one newer than every file it is made from exists, boots it with the guest's
NUT port forwarded to 127.0.0.1 only, and checks from outside what the image
promises: Debian's upsc reads the simulated UPS, the root is read-only,
upsd and the driver run as user nut inside the overlay chroot, init brings
back a killed upsd, and booted like a Pi (no root=, no nutapp.debug=1) it
finds its root by partition label, serves, and the console offers no shell;
with settings in the boot partition's nut/ folder, the first boot imports
them and the next boot writes nothing to the card.

Needs root (mmdebstrap unpacks root-owned files) and the Debian packages in
board/debian/apt-packages.txt, which ./build.sh test installs.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_vm  # noqa: E402

import nutapp  # noqa: E402

ROOT = qemu_vm.ROOT
IMAGE = os.path.join(ROOT, "out", "nutapp-%s-qemu.img" % nutapp.__version__)
SOURCES = ["nutapp", "overlay", "board/common", "board/debian"]
DUMP = os.path.join(ROOT, "overlay", "usr", "share", "nutapp", "default-nut", "eaton-5e1100i.dev")
UPS = "sim"
CHROOT = "/run/nutapp/root"
NUT_UID = 3493  # board/common/users.txt
BOOT_TIMEOUT = 240  # seconds; emulation on a busy 2-core machine is slow

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="building the image needs root (mmdebstrap unpacks root-owned files)"),
]


def newest_source_mtime():
    newest = 0.0
    for top in SOURCES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                newest = max(newest, os.path.getmtime(os.path.join(dirpath, name)))
    return newest


@pytest.fixture(scope="module")
def image():
    missing = [tool for tool in ("mmdebstrap", "qemu-system-aarch64", "mcopy", "genimage",
                                 "upsc") if shutil.which(tool) is None]
    assert not missing, "missing %s: run ./build.sh setup (board/debian/apt-packages.txt)" % (
        ", ".join(missing))
    if not os.path.exists(IMAGE) or os.path.getmtime(IMAGE) < newest_source_mtime():
        subprocess.run([os.path.join(ROOT, "board", "debian", "build-image.sh"), "qemu"],
                       check=True, timeout=900)
    return IMAGE


@pytest.fixture(scope="module")
def vm(image):
    machine = qemu_vm.Vm(image, append="nutapp.debug=1").start()
    try:
        machine.expect(r"debug shell", BOOT_TIMEOUT)
        waited = qemu_vm.wait_serving(machine.port, UPS, BOOT_TIMEOUT)
        assert waited is not None, "upsd never answered LIST VAR; console:\n" + machine.text()
        yield machine
    finally:
        machine.stop()


def processes(vm):
    """{pid: (cmdline, uid fields, root link)} of every guest process."""
    status, out = vm.run(
        "for p in /proc/[0-9]*; do"
        " printf '%s|%s|%s|%s\\n' \"${p#/proc/}\" \"$(tr '\\0' ' ' <$p/cmdline)\""
        " \"$(awk '/^Uid:/ {print $2, $3, $4, $5}' $p/status)\" \"$(readlink $p/root)\";"
        " done 2>/dev/null")
    assert status == 0, out
    table = {}
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) == 4 and fields[0].isdigit():
            table[int(fields[0])] = (fields[1], fields[2].split(), fields[3])
    return table


def python_pids(vm, word):
    """Pids of Python processes whose command line has `word` as an argument."""
    return sorted(pid for pid, (cmd, _, _) in processes(vm).items()
                  if "python" in cmd and word in cmd.split())


def dump_values():
    values = {}
    with open(DUMP) as f:
        for line in f:
            m = re.match(r"^([a-z][\w.]*): (.*)$", line.rstrip("\n"))
            if m:
                values[m.group(1)] = m.group(2)
    return values


def debian_upsc(port):
    return subprocess.run(["upsc", "%s@127.0.0.1:%d" % (UPS, port)], capture_output=True,
                          text=True, timeout=30)


def test_debian_upsc_reads_the_simulated_ups(vm):
    result = debian_upsc(vm.port)
    assert result.returncode == 0, result.stderr
    served = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    expected = {k: v for k, v in dump_values().items()
                if k.split(".")[0] in ("battery", "input", "output", "ups", "outlet")}
    assert expected and {k: served.get(k) for k in expected} == expected


def test_root_is_read_only_squashfs(vm):
    status, mounts = vm.run("cat /proc/mounts")
    assert status == 0
    root = [line.split() for line in mounts.splitlines() if line.split()[1:2] == ["/"]]
    assert root and root[-1][2] == "squashfs" and "ro" in root[-1][3].split(",")

    status, out = vm.run("touch /usr/written-by-test")
    assert status != 0 and "Read-only file system" in out


def test_services_run_as_nut_inside_the_chroot(vm):
    table = processes(vm)
    services = {pid: info for pid, info in table.items()
                if "python" in info[0] and ("upsd" in info[0].split()
                                            or "dummy-ups" in info[0].split())}
    names = {word for cmd, _, _ in services.values() for word in cmd.split()}
    assert {"upsd", "dummy-ups"} <= names, table
    for pid, (cmd, uids, root) in services.items():
        assert uids == [str(NUT_UID)] * 4, (pid, cmd, uids)
        assert root == CHROOT, (pid, cmd, root)


def test_init_restarts_a_killed_upsd(vm):
    before = python_pids(vm, "upsd")
    assert len(before) == 1, before
    status, out = vm.run("kill -9 %d" % before[0])
    assert status == 0, out

    deadline = time.monotonic() + BOOT_TIMEOUT
    after = []
    while time.monotonic() < deadline:
        after = python_pids(vm, "upsd")
        if after and after != before:
            break
        time.sleep(1)
    assert after and before[0] not in after, (before, after)
    assert qemu_vm.wait_serving(vm.port, UPS, BOOT_TIMEOUT) is not None
    assert debian_upsc(vm.port).returncode == 0


def test_production_boot_finds_its_root_and_has_no_console_shell(image, vm):
    # Runs last: stop the debug machine first, two emulated guests on two
    # cores would only slow each other down. Booted like a Pi: no root= on
    # the kernel command line, no nutapp.debug=1.
    vm.stop()
    machine = qemu_vm.Vm(image, root=None).start()
    try:
        report = machine.expect(r"nutapp-status: boot-complete", BOOT_TIMEOUT)
        assert b"nutapp-status: root=squashfs,ro," in machine.output
        assert b"debug shell" not in machine.output
        # Type a command whose output cannot appear unless a shell runs it.
        machine.send("echo shell-$((6*7))\n")
        with pytest.raises(TimeoutError):
            machine.expect(r"shell-42", 15, report.end())
        assert qemu_vm.wait_serving(machine.port, UPS, BOOT_TIMEOUT) is not None
    finally:
        machine.stop()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def boot_until_complete(disk):
    """Boot the card image in place until the services started; return the
    console output and the names of the UPSes upsd serves."""
    machine = qemu_vm.Vm(disk, root=None, copy=False).start()
    try:
        machine.expect(r"nutapp-status: boot-complete", BOOT_TIMEOUT)
        deadline = time.monotonic() + BOOT_TIMEOUT
        names = []
        while not names and time.monotonic() < deadline:
            # Plain LIST UPS: the provisioned upsd also offers STARTTLS, which
            # is not what this test is about.
            names = qemu_vm.nut_list_ups(machine.port)
            time.sleep(0.5)
        return machine.text(), names
    finally:
        machine.stop()


def test_provisioning_imports_the_boot_folder_once(image, tmp_path):
    examples = os.path.join(ROOT, "nutapp", "provision", "examples")
    if not os.path.isdir(examples):
        pytest.fail("nutapp/provision/examples is missing")
    card = str(tmp_path / "card.img")
    shutil.copyfile(image, card)
    fat = "%s@@%d" % (card, qemu_vm.BOOT_PARTITION_OFFSET)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(["mmd", "-i", fat, "::/nut"], check=True, env=env)
    subprocess.run(["mcopy", "-i", fat] + [os.path.join(examples, name)
                                            for name in sorted(os.listdir(examples))]
                   + ["::/nut/"], check=True, env=env)

    # The UPS the example nutapp.conf configures ([ups myups], driver = auto)
    # replaces the image's simulated one.
    with open(os.path.join(examples, "nutapp.conf")) as f:
        wanted = re.findall(r"^\[ups\s+([^\]\s]+)\s*\]", f.read(), re.M)
    assert wanted, "no [ups NAME] section in the example nutapp.conf"

    console, names = boot_until_complete(card)
    assert "provisioning: writing to the SD card" in console
    assert names == wanted, console
    listing = subprocess.run(["mdir", "-b", "-i", fat, "::/nut"], capture_output=True,
                             text=True, env=env, check=True).stdout
    assert "SERVER-CERTIFICATE.pem" in listing

    provisioned = sha256(card)
    console, names = boot_until_complete(card)
    assert names == wanted, console
    assert "provisioning: writing to the SD card" not in console
    assert sha256(card) == provisioned, "the second boot wrote to the card"
