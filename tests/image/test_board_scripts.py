"""The image's scripts on the build host: release checks, device rules, lint.

verify-image.sh is run against files signed by the same helpers the build
uses; the mdev helper that hands UPS device nodes to group nut runs against
a sysfs tree built from real USB descriptors; the mdev and udev rules must
name the same UPS vendors; every shell script passes shellcheck.
"""

import glob
import os
import re
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERIFY = os.path.join(ROOT, "board", "debian", "verify-image.sh")
SIGN = os.path.join(ROOT, "board", "common", "sign.sh")
MDEV_UPS = os.path.join(ROOT, "overlay", "usr", "libexec", "nutapp", "mdev-ups")
UDEV_RULES = os.path.join(ROOT, "overlay", "etc", "udev", "rules.d", "62-nutapp-devices.rules")
NUT_GID = 3493


def sh(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


# --- checksums and signatures ------------------------------------------------

@pytest.fixture
def release(tmp_path):
    image = tmp_path / "nutapp-0.1.0-qemu.img"
    image.write_bytes(os.urandom(4096) + b"\0" * 100000)
    other = tmp_path / "nutapp-0.1.0-rpi4.img"
    other.write_bytes(b"another image")
    sums = sh("sha256sum", image.name, other.name, cwd=tmp_path)
    (tmp_path / "SHA256SUMS").write_text(sums.stdout)
    return image


def make_key(tmp_path, kind):
    key, pub = tmp_path / ("%s.pem" % kind), tmp_path / ("%s.pub" % kind)
    algorithm = {"rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                 "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                 "ed25519": ["-algorithm", "ED25519"]}[kind]
    assert sh("openssl", "genpkey", *algorithm, "-out", str(key)).returncode == 0
    assert sh("openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)).returncode == 0
    return key, pub


def sign(key, image):
    return sh("bash", "-c", '. "$0"; sign_file "$1" "$2" "$2.sig"', SIGN, str(key), str(image))


def test_verify_accepts_a_listed_image(release):
    result = sh(VERIFY, str(release))
    assert result.returncode == 0, result.stderr
    assert "checksum OK" in result.stderr


def test_verify_rejects_a_changed_image(release):
    with open(release, "r+b") as f:
        f.seek(5000)
        f.write(b"\1")
    result = sh(VERIFY, str(release))
    assert result.returncode != 0 and "does not match" in result.stderr


def test_verify_rejects_an_unlisted_image(release):
    unlisted = release.with_name("nutapp-0.2.0-qemu.img")
    shutil.copy(release, unlisted)
    result = sh(VERIFY, str(unlisted))
    assert result.returncode != 0 and "not listed" in result.stderr


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
def test_signature_made_by_the_build_verifies(tmp_path, release, kind):
    key, pub = make_key(tmp_path, kind)
    assert sign(key, release).returncode == 0
    result = sh(VERIFY, str(release), str(pub))
    assert result.returncode == 0, result.stderr
    assert "signature OK" in result.stderr


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_signature_by_another_key_fails(tmp_path, release, kind):
    key, _ = make_key(tmp_path, kind)
    other = tmp_path / "other"
    other.mkdir()
    _, other_pub = make_key(other, kind)
    assert sign(key, release).returncode == 0
    result = sh(VERIFY, str(release), str(other_pub))
    assert result.returncode != 0 and "BAD signature" in result.stderr


def test_missing_signature_fails_when_a_key_is_given(tmp_path, release):
    _, pub = make_key(tmp_path, "ec")
    result = sh(VERIFY, str(release), str(pub))
    assert result.returncode != 0 and "no signature" in result.stderr


def test_signature_without_a_key_is_reported_unchecked(tmp_path, release):
    key, _ = make_key(tmp_path, "ec")
    assert sign(key, release).returncode == 0
    result = sh(VERIFY, str(release), env=dict(os.environ, NUTAPP_VERIFY_KEY=""))
    assert result.returncode == 0 and "NOT checked" in result.stderr


# --- device access for group nut ----------------------------------------------

def descriptors(interface_classes):
    """A sysfs `descriptors` blob: device descriptor, one configuration, and
    one interface descriptor (plus a HID class descriptor) per class."""
    device = bytes([18, 1, 0x10, 0x01, 0, 0, 0, 8, 0x63, 0x04, 0xFF, 0xFF, 0, 1, 1, 2, 0, 1])
    body = b""
    for number, cls in enumerate(interface_classes):
        body += bytes([9, 4, number, 0, 1, cls, 0, 0, 0])
        if cls == 3:
            body += bytes([9, 0x21, 0x10, 0x01, 0, 1, 0x22, 0x40, 0x02])
        body += bytes([7, 5, 0x81, 3, 8, 0, 10])
    total = 9 + len(body)
    config = bytes([9, 2, total & 0xFF, total >> 8, len(interface_classes), 1, 0, 0xA0, 50])
    return device + config + body


@pytest.fixture
def fake_system(tmp_path):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    sysfs.mkdir()
    dev.mkdir()
    return sysfs, dev


def usb_device(sysfs, dev, name, vendor, classes):
    path = "/devices/platform/usb1/%s" % name
    d = sysfs / path.lstrip("/")
    d.mkdir(parents=True)
    (d / "idVendor").write_text(vendor + "\n")
    (d / "descriptors").write_bytes(descriptors(classes))
    node = dev / "bus" / "usb" / "001" / name.replace("1-", "00")
    node.parent.mkdir(parents=True, exist_ok=True)
    node.write_text("")
    os.chmod(node, 0o600)
    devname = os.path.relpath(node, dev)
    return path, devname, node


def run_helper(sysfs, dev, **env):
    full = dict(os.environ, SYSFS=str(sysfs), DEV=str(dev), **env)
    return subprocess.run(["sh", MDEV_UPS], env=full, capture_output=True, text=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to nut needs root")
@pytest.mark.parametrize("vendor, classes, allowed", [
    ("0463", [3], True),        # Eaton HID power device
    ("051d", [3], True),        # APC
    ("0665", [3], True),        # Cypress-based serial-over-HID UPS (nutdrv_qx)
    ("0463", [0xFF], False),    # UPS maker, but no HID interface
    ("046d", [3], False),       # a HID keyboard from a vendor that makes no UPS
    ("0764", [8, 3], True),     # HID as second interface
])
def test_usb_ups_node_goes_to_group_nut(fake_system, vendor, classes, allowed):
    sysfs, dev = fake_system
    path, devname, node = usb_device(sysfs, dev, "1-2", vendor, classes)
    result = run_helper(sysfs, dev, DEVPATH=path, DEVNAME=devname, DEVTYPE="usb_device",
                        ACTION="add")
    assert result.returncode == 0, result.stderr
    st = os.stat(node)
    if allowed:
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (NUT_GID, 0o660)
    else:
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0o600)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to nut needs root")
@pytest.mark.parametrize("hid, allowed", [
    ("0003:0463:FFFF.0001", True),   # USB HID from Eaton
    ("0003:046D:C31C.0002", False),  # USB keyboard
    ("0005:0463:FFFF.0003", False),  # Bluetooth, not a UPS on USB
])
def test_hidraw_node_goes_to_group_nut_only_for_a_ups(fake_system, hid, allowed):
    sysfs, dev = fake_system
    hid_dir = sysfs / "devices" / "usb1" / "1-2" / "1-2:1.0" / hid
    hidraw = hid_dir / "hidraw" / "hidraw0"
    hidraw.mkdir(parents=True)
    os.symlink(hid_dir, hidraw / "device")
    node = dev / "hidraw0"
    node.write_text("")
    os.chmod(node, 0o600)
    devpath = "/" + os.path.relpath(hidraw, sysfs)
    result = run_helper(sysfs, dev, DEVPATH=devpath, MDEV="hidraw0", ACTION="add")
    assert result.returncode == 0, result.stderr
    st = os.stat(node)
    assert (st.st_gid == NUT_GID) is allowed


def test_mdev_and_udev_rules_name_the_same_ups_vendors():
    with open(MDEV_UPS) as f:
        mdev = set(re.search(r'ups_vendors="([^"]*)"', f.read()).group(1).split())
    with open(UDEV_RULES) as f:
        lists = re.findall(r'ATTRS?\{idVendor\}=="([0-9a-f|]+)"', f.read())
    assert len(lists) == 3
    for found in lists:
        assert set(found.split("|")) == mdev


# --- shell style -----------------------------------------------------------------

def shell_scripts():
    paths = glob.glob(os.path.join(ROOT, "board", "debian", "*.sh"))
    paths += glob.glob(os.path.join(ROOT, "board", "common", "*.sh"))
    paths += [os.path.join(ROOT, "board", "debian", "initramfs-init"),
              os.path.join(ROOT, "overlay", "usr", "share", "udhcpc", "default.script")]
    paths += glob.glob(os.path.join(ROOT, "overlay", "etc", "init.d", "*"))
    paths += glob.glob(os.path.join(ROOT, "overlay", "usr", "libexec", "nutapp", "*"))
    paths += glob.glob(os.path.join(ROOT, "bench", "image", "*.sh"))
    return sorted(paths)


def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: run ./build.sh setup (board/debian/apt-packages.txt)"
    result = subprocess.run([shellcheck, "-x", *shell_scripts()], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout


def test_shell_scripts_are_executable():
    for path in shell_scripts():
        if not path.endswith("sign.sh"):
            assert os.access(path, os.X_OK), path
