"""The repository as a Buildroot external tree (BR2_EXTERNAL, name NUTAPP).

A Buildroot build downloads its toolchain and every source, so it cannot
run here. What can be checked offline is checked:

- always: the tree's shape (external.desc, Config.in, external.mk, the
  package recipes), that every file a defconfig names exists, the users
  table, the boot files against the partition layout, the packages and
  kernel options (by name) the provisioned firewall, Wi-Fi and SSH need,
  and post-build.sh and post-image.sh run on stand-in inputs (the image
  with the real genimage, mtools and e2fsprogs when the machine has them);
- with BUILDROOT_DIR pointing at a Buildroot source tree: every defconfig
  loaded by Buildroot's kconfig, which drops an option whose dependencies
  are not met without a word, so each option is compared with the
  resulting .config; the packages as Buildroot's make sees them
  (printvars); every program the overlay's scripts and mdev rules run,
  against BusyBox's configuration and the selected packages; the start-up
  scripts the packages' recipes install, which post-build.sh must drop;
  the Python modules nutapp imports; Dropbear's build against S57sshd's
  flags; and utils/check-package over the files of the external tree.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
EXTERNAL = "$(BR2_EXTERNAL_NUTAPP_PATH)"
DEFCONFIGS = sorted(TOP.glob("configs/*_defconfig"))
PACKAGES = sorted(p.parent for p in TOP.glob("package/*/Config.in"))
RPI_DEFCONFIGS = [d for d in DEFCONFIGS if "_rpi" in d.name]

# The files this tree adds to Buildroot (the overlay and board/common are
# shared with the Debian-package image and follow its conventions).
EXTERNAL_TREE = ["external.desc", "Config.in", "external.mk", "package", "configs",
                 "board/buildroot"]

BUILDROOT_DIR = os.environ.get("BUILDROOT_DIR")
needs_buildroot = pytest.mark.skipif(
    not (BUILDROOT_DIR and Path(BUILDROOT_DIR, "Makefile").is_file()
         and Path(BUILDROOT_DIR, "support/kconfig").is_dir()),
    reason="set BUILDROOT_DIR to a Buildroot source tree to load the defconfigs",
)


def defconfig_id(path):
    return path.name[: -len("_defconfig")]


def parse_config(path):
    """Options of a defconfig or .config: name -> raw value, None if unset."""
    options = {}
    for line in Path(path).read_text().splitlines():
        m = re.fullmatch(r"# (BR2_\w+) is not set", line.strip())
        if m:
            options[m.group(1)] = None
            continue
        m = re.fullmatch(r"(BR2_\w+)=(.*)", line.strip())
        if m:
            options[m.group(1)] = m.group(2)
    return options


def unquote(value):
    assert value.startswith('"') and value.endswith('"'), value
    return value[1:-1]


def external_paths(value):
    """The files of this tree a string option names."""
    return [TOP / word[len(EXTERNAL) + 1:] for word in unquote(value).split()
            if word.startswith(EXTERNAL + "/")]


def board_dir(options):
    (path,) = external_paths(options["BR2_ROOTFS_POST_SCRIPT_ARGS"])
    return path


def users_table():
    """The users table's entries: lists of the nine fields."""
    entries = []
    for line in (TOP / "board/common/users.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entries.append(line.split(maxsplit=8))
    return entries


def kconfig_fragment(paths):
    options = {}
    for path in paths:
        for line in path.read_text().splitlines():
            m = re.fullmatch(r"(CONFIG_\w+)=(.*)", line.strip())
            if m:
                options[m.group(1)] = m.group(2)
            m = re.fullmatch(r"# (CONFIG_\w+) is not set", line.strip())
            if m:
                options[m.group(1)] = None
    return options


# -- the tree's shape ---------------------------------------------------------


def test_external_desc_names_the_tree():
    fields = {}
    for line in (TOP / "external.desc").read_text().splitlines():
        key, sep, value = line.partition(": ")
        assert sep and value.strip(), f"not 'keyword: value': {line!r}"
        fields[key] = value.strip()

    assert fields["name"] == "NUTAPP"
    assert re.fullmatch(r"[A-Za-z0-9_]+", fields["name"])
    assert set(fields) <= {"name", "desc"}
    assert len(fields.get("desc", "")) <= 40


def test_config_in_sources_every_package():
    sourced = []
    for line in (TOP / "Config.in").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r'source "\$BR2_EXTERNAL_NUTAPP_PATH/(package/[^/"]+)/Config.in"',
                         line)
        assert m, f"Config.in: not a package source line: {line!r}"
        sourced.append(TOP / m.group(1))

    assert PACKAGES, "no package/*/Config.in"
    assert sorted(sourced) == PACKAGES


def test_external_mk_includes_every_recipe():
    text = (TOP / "external.mk").read_text()
    assert "include $(sort $(wildcard $(BR2_EXTERNAL_NUTAPP_PATH)/package/*/*.mk))" in text
    for package in PACKAGES:
        assert (package / f"{package.name}.mk").is_file()


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_recipe(package):
    prefix = package.name.upper().replace("-", "_")
    mk = (package / f"{package.name}.mk").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[+:]?=\s*(.*)$", mk, re.M))
    config_in = (package / "Config.in").read_text()

    assert re.search(rf"^config BR2_PACKAGE_{prefix}$", config_in, re.M)
    assert "depends on BR2_PACKAGE_PYTHON3" in config_in
    assert mk.rstrip().endswith("$(eval $(python-package))")
    for name in variables:
        assert name.startswith(prefix + "_"), f"{name} is not {prefix}_*"
    for suffix in ("VERSION", "SITE", "LICENSE", "SETUP_TYPE"):
        assert f"{prefix}_{suffix}" in variables
    assert variables[f"{prefix}_SETUP_TYPE"] in ("setuptools", "pep517")

    if variables.get(f"{prefix}_SITE_METHOD") == "local":
        return
    # A download: its hash, and each license file's, must be recorded,
    # since the defconfigs set BR2_DOWNLOAD_FORCE_CHECK_HASHES.
    hashes = (package / f"{package.name}.hash").read_text()
    version = variables[f"{prefix}_VERSION"]
    source = variables[f"{prefix}_SOURCE"].replace(f"$({prefix}_VERSION)", version)
    assert re.search(rf"^sha256\s+[0-9a-f]{{64}}\s+{re.escape(source)}$", hashes, re.M)
    for license_file in variables.get(f"{prefix}_LICENSE_FILES", "").split():
        assert re.search(rf"^sha256\s+[0-9a-f]{{64}}\s+{re.escape(license_file)}$",
                         hashes, re.M)


def test_nutapp_recipe_builds_this_tree():
    mk = TOP / "package/nutapp/nutapp.mk"
    text = mk.read_text()
    assert re.search(r"^NUTAPP_SITE = \$\(BR2_EXTERNAL_NUTAPP_PATH\)$", text, re.M)
    assert re.search(r"^NUTAPP_SITE_METHOD = local$", text, re.M)

    # Evaluate the recipe with GNU make, Buildroot's macros stubbed out.
    stub = f"BR2_EXTERNAL_NUTAPP_PATH = {TOP}\npython-package =\ninclude {mk}\n" \
           "print:\n\t@echo '$(NUTAPP_VERSION)'\n"
    out = subprocess.run(["make", "-s", "-f", "-", "print"], input=stub, text=True,
                         capture_output=True, check=True).stdout.strip()
    project = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]
    assert out == project["version"]

    # post-build.sh writes nutapp.__version__ for the console's status
    # line; the image must not report one version and install another.
    init = (TOP / "nutapp/__init__.py").read_text()
    assert re.search(rf'^__version__ = "{re.escape(out)}"$', init, re.M)


def test_gpiozero_recipe_is_for_64_bit_only():
    config_in = (TOP / "package/python-gpiozero64/Config.in").read_text()
    assert "depends on BR2_aarch64" in config_in
    assert "depends on !BR2_PACKAGE_PYTHON_GPIOZERO" in config_in
    nutapp = (TOP / "package/nutapp/Config.in").read_text()
    assert "select BR2_PACKAGE_PYTHON_GPIOZERO64 if BR2_aarch64" in nutapp


# -- the defconfigs -----------------------------------------------------------


def test_there_is_a_defconfig_per_board():
    assert {defconfig_id(d) for d in DEFCONFIGS} == {
        "nutapp_rpi3_64", "nutapp_rpi4_64", "nutapp_rpizero2w_64",
        "nutapp_qemu_aarch64_virt"}


@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_defconfig_names_files_that_exist(defconfig):
    options = parse_config(defconfig)
    named = []
    for name, value in options.items():
        if value and value.startswith('"'):
            named += external_paths(value)
    assert named, "no file of this tree named"
    for path in named:
        assert path.exists(), f"{defconfig.name}: {path.relative_to(TOP)} does not exist"

    for script in ("BR2_ROOTFS_POST_BUILD_SCRIPT", "BR2_ROOTFS_POST_IMAGE_SCRIPT"):
        for path in external_paths(options[script]):
            assert os.access(path, os.X_OK), f"{path} is not executable"
    assert board_dir(options).is_dir()


@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_defconfig_builds_the_appliance(defconfig):
    options = parse_config(defconfig)

    def is_set(name):
        return options.get(name) == "y"

    assert is_set("BR2_DOWNLOAD_FORCE_CHECK_HASHES")
    # Read-only squashfs root: the remount must be explicitly off, since
    # Buildroot's default is on.
    assert is_set("BR2_TARGET_ROOTFS_SQUASHFS")
    assert "BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW" in options
    assert options["BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW"] is None
    assert unquote(options["BR2_ROOTFS_OVERLAY"]).split()[0] == f"{EXTERNAL}/overlay"
    assert unquote(options["BR2_ROOTFS_USERS_TABLES"]) == \
        f"{EXTERNAL}/board/common/users.txt"
    for package in ("PYTHON3", "PYTHON3_SSL", "PYTHON_SERIAL", "PYTHON_PYUSB",
                    "PYTHON_CRYPTOGRAPHY", "NUTAPP"):
        assert is_set(f"BR2_PACKAGE_{package}"), package
    if is_set("BR2_aarch64"):
        assert is_set("BR2_PACKAGE_PYTHON_GPIOZERO64")

    # The kernel mounts the squashfs root itself and nutapp's service
    # chroot is an overlay: both built in, with the squashfs compression.
    fragments = kconfig_fragment(
        external_paths(options["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"]))
    assert fragments.get("CONFIG_SQUASHFS") == "y"
    assert fragments.get("CONFIG_OVERLAY_FS") == "y"
    (compression,) = [name[len("BR2_TARGET_ROOTFS_SQUASHFS4_"):] for name in options
                      if name.startswith("BR2_TARGET_ROOTFS_SQUASHFS4_") and is_set(name)]
    assert fragments.get(f"CONFIG_SQUASHFS_{compression}") == "y"


# Kernel modules the overlay loads by name -> the options that build them
# (nft_reject_inet has none of its own: NFT_REJECT with NF_TABLES_INET).
MODULE_OPTIONS = {
    "nf_tables": ["CONFIG_NF_TABLES"],
    "nft_ct": ["CONFIG_NFT_CT", "CONFIG_NF_CONNTRACK"],
    "nft_reject_inet": ["CONFIG_NFT_REJECT", "CONFIG_NF_TABLES_INET"],
    "nft_limit": ["CONFIG_NFT_LIMIT"],
    "mac80211_hwsim": ["CONFIG_MAC80211_HWSIM"],
}


def modules_loaded_by(script):
    """The modules a script loads with `modprobe [-qa...] NAME...`."""
    modules = []
    for m in re.finditer(r"\bmodprobe((?:\s+-\w+)*)((?:\s+[a-z][a-z0-9_]*(?=\s|$))+)",
                         shell_code(script.read_text())):
        modules += m.group(2).split()
    return modules


@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_defconfig_has_what_the_provisioned_settings_need(defconfig):
    """The firewall, Wi-Fi and SSH the provisioned settings turn on: the
    packages, and the kernel options of the fragments (checked by name;
    the kernel's own Kconfig is not here)."""
    options = parse_config(defconfig)
    for package in ("NFTABLES", "WPA_SUPPLICANT", "WPA_SUPPLICANT_CLI",
                    "WPA_SUPPLICANT_DEBUG_SYSLOG", "WIRELESS_REGDB", "DROPBEAR"):
        assert options.get(f"BR2_PACKAGE_{package}") == "y", package
    # Dropbear's client is not wanted, as on the Debian-package image.
    assert options.get("BR2_PACKAGE_DROPBEAR_CLIENT", "y") is None
    # Key logins only: besides dropbear -s -g, root has no password.
    assert options.get("BR2_TARGET_ENABLE_ROOT_LOGIN", "y") is None
    # DHCP leases go through the overlay's script (which admits the subnet
    # to the firewall), put over BusyBox's own; no ifupdown scripts.
    network = (TOP / "overlay/usr/libexec/nutapp/network").read_text()
    (dhcp_script,) = re.findall(r"^dhcp_script=(\S+)$", network, re.M)
    assert (TOP / "overlay" / dhcp_script.lstrip("/")).is_file()
    assert options.get("BR2_PACKAGE_IFUPDOWN_SCRIPTS", "y") is None

    kernel = kconfig_fragment(
        external_paths(options["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"]))
    loaded = modules_loaded_by(TOP / "overlay/etc/init.d/S55system")
    assert {"nf_tables", "nft_ct", "nft_reject_inet", "nft_limit"} <= set(loaded)
    for module in loaded:
        assert module in MODULE_OPTIONS, f"S55system loads {module}: which option builds it?"
        for option in MODULE_OPTIONS[module]:
            assert kernel.get(option) in ("y", "m"), f"{option} (for {module})"
    assert kernel.get("CONFIG_NETFILTER") == "y"
    for option in ("CONFIG_CFG80211", "CONFIG_MAC80211"):
        assert kernel.get(option) in ("y", "m"), option
    assert kernel.get("CONFIG_WIRELESS") == "y" and kernel.get("CONFIG_WLAN") == "y"

    if "_rpi" in defconfig.name:
        # The Pi's radio: its driver and firmware.
        assert kernel.get("CONFIG_BRCMFMAC") in ("y", "m")
        assert kernel.get("CONFIG_BRCMFMAC_SDIO") == "y"
        assert options.get("BR2_PACKAGE_BRCMFMAC_SDIO_FIRMWARE_RPI") == "y"
        assert options.get("BR2_PACKAGE_BRCMFMAC_SDIO_FIRMWARE_RPI_WIFI") == "y"
    else:
        # QEMU: the simulated radios the Wi-Fi tests load.
        assert kernel.get("CONFIG_MAC80211_HWSIM") in ("y", "m")


def test_module_names_are_read_from_the_scripts():
    assert modules_loaded_by(TOP / "overlay/etc/init.d/S55system")[:4] == [
        "nf_tables", "nft_ct", "nft_reject_inet", "nft_limit"]


@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_device_rules_give_nut_its_ups_nodes(defconfig):
    options = parse_config(defconfig)
    ((nut_gid),) = [int(e[3]) for e in users_table() if e[0] == "nut"]

    if options.get("BR2_ROOTFS_DEVICE_CREATION_DYNAMIC_MDEV") == "y":
        rules = (TOP / "overlay/etc/mdev.conf").read_text()
    else:
        assert options.get("BR2_ROOTFS_DEVICE_CREATION_DYNAMIC_EUDEV") == "y", \
            "neither mdev nor eudev: device nodes would stay root's"
        rules = "\n".join(p.read_text()
                          for p in (TOP / "overlay/etc/udev/rules.d").glob("*.rules"))
    lines = [line for line in rules.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    for node in ("ttyUSB", "ttyACM", "hidraw", "gpiochip", "usb_device"):
        assert any(node in line for line in lines), f"no rule for {node}"
    assert re.search(rf"\b(nut|{nut_gid})\b", rules)


def test_users_table_pins_the_service_user():
    entries = users_table()
    names = [e[0] for e in entries]
    assert len(names) == len(set(names))
    for entry in entries:
        assert len(entry) >= 8, f"users.txt: fewer than 8 fields: {entry}"
        name, uid, group, gid, password, home, shell, groups = entry[:8]
        assert name != "root" and group != "root"
        assert ":" not in " ".join(entry)
        assert re.fullmatch(r"-?\d+", uid) and re.fullmatch(r"-?\d+", gid)
        assert int(uid) != 0 and int(gid) != 0
        assert home == "-" or (home.startswith("/") and home != "/")
        assert shell == "-" or shell.startswith("/")
        assert groups == "-" or re.fullmatch(r"[a-z_][a-z0-9_-]*(,[a-z_][a-z0-9_-]*)*",
                                             groups)
        assert password in ("*", "-") or password[0] in "!="

    (nut,) = [e for e in entries if e[0] == "nut"]
    # Files on the data partition belong to nut across images.
    assert int(nut[1]) > 0 and int(nut[3]) > 0
    assert nut[2] == "nut"


# -- boot files against the partition layout ------------------------------------


def partition_layout():
    """(disk signature, the partition names in order) of board/common/genimage.cfg."""
    text = (TOP / "board/common/genimage.cfg").read_text()
    signature = re.search(r"disk-signature\s*=\s*0x([0-9a-fA-F]{8})", text).group(1)
    return signature.lower(), re.findall(r"^\s*partition\s+(\w+)\s*\{", text, re.M)


def kernel_args(path):
    (line,) = [line for line in path.read_text().splitlines() if line.strip()]
    return line.split()


@pytest.mark.parametrize("defconfig", RPI_DEFCONFIGS, ids=defconfig_id)
def test_rpi_boot_files_match_the_image(defconfig):
    options = parse_config(defconfig)
    signature, partitions = partition_layout()
    root_index = partitions.index("rootfs") + 1

    (cmdline,) = external_paths(options["BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE"])
    args = kernel_args(cmdline)
    assert f"root=PARTUUID={signature}-{root_index:02d}" in args
    assert "rootfstype=squashfs" in args and "ro" in args and "rw" not in args

    (config_txt,) = external_paths(options["BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE"])
    settings = dict(line.split("=", 1) for line in config_txt.read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["arm_64bit"] == "1"
    assert settings["kernel"] == "Image"
    # The firmware named must be the variant the defconfig installs.
    variants = {"VARIANT_PI": "start.elf", "VARIANT_PI_CD": "start_cd.elf",
                "VARIANT_PI4": "start4.elf", "VARIANT_PI4_CD": "start4cd.elf"}
    (installed,) = [start for variant, start in variants.items()
                    if options.get(f"BR2_PACKAGE_RPI_FIRMWARE_{variant}") == "y"]
    assert settings["start_file"] == installed
    fixup = installed.replace("start", "fixup").replace(".elf", ".dat")
    assert settings["fixup_file"] == fixup


def test_qemu_command_line_matches_the_image():
    _, partitions = partition_layout()
    args = kernel_args(TOP / "board/common/cmdline-qemu.txt")
    assert f"root=/dev/vda{partitions.index('rootfs') + 1}" in args
    assert "rootfstype=squashfs" in args and "ro" in args


# -- post-build.sh and post-image.sh on stand-in inputs ---------------------------


def run_script(script, *args, env=None):
    full_env = dict(os.environ, BR2_EXTERNAL_NUTAPP_PATH=str(TOP), **(env or {}))
    return subprocess.run(["sh", str(TOP / "board/buildroot/common" / script), *args],
                          env=full_env, capture_output=True, text=True)


def test_post_build_leaves_the_overlays_boot_sequence(tmp_path):
    target = tmp_path / "target"
    (target / "etc/init.d").mkdir(parents=True)
    (target / "var").mkdir()
    (target / "boot/nut").mkdir(parents=True)
    overlay_scripts = sorted(p.name for p in (TOP / "overlay/etc/init.d").glob("S??*"))
    assert overlay_scripts
    # What Buildroot's packages would have installed, beside the overlay's.
    for name in overlay_scripts + ["S02klogd", "S50crond", "S01seedrng"]:
        (target / "etc/init.d" / name).write_text("#!/bin/sh\n")
    (target / "var/log").symlink_to("../tmp")
    (target / "etc/resolv.conf").symlink_to("../tmp/resolv.conf")

    result = run_script("post-build.sh", str(target), str(TOP / "board/buildroot/rpi4-64"))
    assert result.returncode == 0, result.stderr

    assert sorted(p.name for p in (target / "etc/init.d").iterdir()) == overlay_scripts
    assert os.readlink(target / "var/log") == "/run/log"
    assert os.readlink(target / "etc/resolv.conf") == "/run/net/resolv.conf"
    assert os.readlink(target / "var/run") == "/run"
    assert (target / "data").is_dir() and list((target / "boot").iterdir()) == []
    version = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]["version"]
    assert (target / "usr/share/nutapp/version").read_text().strip() == version


def stand_in_packages(target):
    """What Buildroot's dropbear, wpa_supplicant and ifupdown would have
    left in TARGET, as their recipes install it."""
    (target / "usr/sbin").mkdir(parents=True)
    (target / "usr/bin").mkdir(parents=True)
    (target / "etc/network/if-up.d").mkdir(parents=True)
    (target / "usr/sbin/dropbear").write_text("dropbearmulti")
    for name in ("dropbearkey", "dropbearconvert", "scp", "dbclient", "ssh"):
        (target / "usr/bin" / name).symlink_to("../sbin/dropbear")
    (target / "etc/dropbear").symlink_to("/var/run/dropbear")
    (target / "usr/sbin/wpa_supplicant").write_text("wpa_supplicant")
    (target / "etc/wpa_supplicant.conf").write_text("ctrl_interface=/var/run/wpa_supplicant\n")
    (target / "etc/network/interfaces").write_text("auto lo\n")
    (target / "root").mkdir(mode=0o755)


def test_post_build_leaves_ssh_as_the_debian_image_has_it(tmp_path):
    target = tmp_path / "target"
    (target / "etc/init.d").mkdir(parents=True)
    stand_in_packages(target)
    (target / "etc/init.d/S50dropbear").write_text("#!/bin/sh\n")
    (target / "etc/init.d/S35nftables").write_text("#!/bin/sh\n")

    result = run_script("post-build.sh", str(target), str(TOP / "board/buildroot/rpi4-64"))
    assert result.returncode == 0, result.stderr

    # Dropbear starts from S57sshd only, when keys are provisioned.
    scripts = {p.name for p in (target / "etc/init.d").iterdir()}
    assert "S57sshd" in {p.name for p in (TOP / "overlay/etc/init.d").iterdir()}
    assert not scripts & {"S50dropbear", "S35nftables"}
    # The server and the key maker (nutapp ssh-hostkeys) stay, nothing else.
    assert (target / "usr/sbin/dropbear").is_file()
    assert os.readlink(target / "usr/bin/dropbearkey") == "../sbin/dropbear"
    for gone in ("usr/bin/dropbearconvert", "usr/bin/scp", "usr/bin/dbclient", "usr/bin/ssh",
                 "etc/dropbear", "etc/wpa_supplicant.conf", "etc/network"):
        assert not os.path.lexists(target / gone), gone
    assert (target / "usr/sbin/wpa_supplicant").is_file()

    # Root's keys are the provisioned ones, as S57sshd expects and the
    # Debian-package build links them.
    keys = target / "root/.ssh/authorized_keys"
    assert os.readlink(keys) == "/etc/nut/system/authorized_keys"
    assert "/etc/nut/system/authorized_keys" in (TOP / "overlay/etc/init.d/S57sshd").read_text()
    debian = (TOP / "board/debian/build-image.sh").read_text()
    assert 'ln -sfn /etc/nut/system/authorized_keys "$dir/root/.ssh/authorized_keys"' in debian
    for path in ("root", "root/.ssh"):
        assert (target / path).stat().st_mode & 0o777 == 0o700, path

    # A second run (make rebuilds the target tree in place) is fine.
    result = run_script("post-build.sh", str(target), str(TOP / "board/buildroot/rpi4-64"))
    assert result.returncode == 0, result.stderr
    assert os.readlink(keys) == "/etc/nut/system/authorized_keys"


IMAGE_TOOLS = ["genimage", "mkfs.vfat", "mcopy", "mdir", "mke2fs", "tune2fs",
               "mksquashfs", "sfdisk"]


def stand_in_images(images, board):
    """Files Buildroot would leave in output/images for BOARD, as stand-ins."""
    images.mkdir()
    root = images.parent / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("nutapp\n")
    subprocess.run(["mksquashfs", str(root), str(images / "rootfs.squashfs"), "-all-root",
                    "-noappend", "-quiet"], check=True, capture_output=True)
    (images / "Image").write_bytes(b"kernel" * 1000)
    if board.startswith("rpi"):
        firmware = images / "rpi-firmware"
        (firmware / "overlays").mkdir(parents=True)
        for name in ("start4cd.elf", "fixup4cd.dat", "overlays/disable-bt.dtbo"):
            (firmware / name).write_bytes(b"firmware")
        for name in ("config.txt", "cmdline.txt"):
            shutil.copy(TOP / "board/buildroot" / board / name, firmware / name)
        (images / "bcm2711-rpi-4-b.dtb").write_bytes(b"dtb")


@pytest.mark.skipif(any(shutil.which(t) is None for t in IMAGE_TOOLS),
                    reason="needs " + ", ".join(IMAGE_TOOLS))
@pytest.mark.parametrize("board", ["rpi4-64", "qemu-aarch64-virt"])
def test_post_image_lays_out_the_sd_card(tmp_path, board):
    images = tmp_path / "images"
    stand_in_images(images, board)
    (tmp_path / "build").mkdir()

    result = run_script("post-image.sh", str(images), str(TOP / "board/buildroot" / board),
                        env={"BUILD_DIR": str(tmp_path / "build")})
    assert result.returncode == 0, result.stdout + result.stderr

    sdcard = images / "sdcard.img"
    table = json.loads(subprocess.run(["sfdisk", "--json", str(sdcard)], check=True,
                                      capture_output=True, text=True).stdout)
    table = table["partitiontable"]
    signature, names = partition_layout()
    assert table["label"] == "dos" and table["id"] == f"0x{signature}"
    parts = table["partitions"]
    assert [p["type"] for p in parts] == ["c", "83", "83"]
    assert names == ["boot", "rootfs", "data"]

    # The root partition holds the squashfs unchanged.
    squashfs = (images / "rootfs.squashfs").read_bytes()
    with open(sdcard, "rb") as disk:
        disk.seek(parts[1]["start"] * 512)
        assert disk.read(len(squashfs)) == squashfs

    listing = subprocess.run(["mdir", "-b", "-/", "-i", f"{sdcard}@@{parts[0]['start'] * 512}",
                              "::"], check=True, capture_output=True, text=True,
                             env=dict(os.environ, MTOOLS_SKIP_CHECK="1")).stdout
    files = {line.strip().lstrip(":").lstrip("/") for line in listing.splitlines()}
    examples = {f"nut/{p.name}" for p in (TOP / "nutapp/provision/examples").iterdir()
                if p.is_file()}
    assert "nut/nutapp.conf" in examples
    if board.startswith("rpi"):
        assert {"config.txt", "cmdline.txt", "start4cd.elf", "Image",
                "bcm2711-rpi-4-b.dtb", "overlays/disable-bt.dtbo"} <= files
        # The provisioning folder with nutapp's examples, as the
        # Debian-package build puts it on a Pi's card.
        assert examples <= files
    else:
        assert "Image" in files
        assert not examples & files
        assert os.access(images / "start-qemu.sh", os.X_OK)
        assert (images / "cmdline.txt").read_text() == \
            (TOP / "board/common/cmdline-qemu.txt").read_text()


def test_start_qemu_forwards_nut_and_ssh(tmp_path):
    """start-qemu.sh runs output/host's QEMU: a stand-in that prints its
    arguments."""
    images = tmp_path / "images"
    images.mkdir()
    (tmp_path / "host/bin").mkdir(parents=True)
    fake = tmp_path / "host/bin/qemu-system-aarch64"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    shutil.copy(TOP / "board/common/cmdline-qemu.txt", images / "cmdline.txt")
    script = TOP / "board/buildroot/qemu-aarch64-virt/start-qemu.sh"

    def run(**env):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("NUTAPP_QEMU")}
        result = subprocess.run(["sh", str(script), "-S"], cwd=tmp_path, capture_output=True,
                                text=True, env=dict(full_env, **env))
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    shutil.copy(script, images / "start-qemu.sh")
    script = images / "start-qemu.sh"
    args = run()
    netdev = args[args.index("-netdev") + 1]
    assert netdev == "user,id=n0,hostfwd=tcp:127.0.0.1:3493-:3493"
    assert "virtio-rng-pci" in args
    assert args[-1] == "-S"
    assert args[args.index("-append") + 1] == (images / "cmdline.txt").read_text().strip()

    args = run(NUTAPP_QEMU_PORT="13493", NUTAPP_QEMU_SSH_PORT="10022")
    netdev = args[args.index("-netdev") + 1]
    assert netdev == ("user,id=n0,hostfwd=tcp:127.0.0.1:13493-:3493,"
                      "hostfwd=tcp:127.0.0.1:10022-:22")


def shell_scripts():
    scripts = []
    for path in sorted((TOP / "board/buildroot").rglob("*")):
        if path.is_file() and path.read_bytes()[:9] == b"#!/bin/sh":
            scripts.append(path)
    return scripts


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck")
def test_board_scripts_pass_shellcheck():
    scripts = shell_scripts()
    assert len(scripts) >= 3
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


# -- with a Buildroot source tree -------------------------------------------------


def buildroot_make(out, *targets, check=True):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BR2_", "MAKE")) and k not in ("O", "CDPATH")}
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", BUILDROOT_DIR,
                           f"O={out}", f"BR2_EXTERNAL={TOP}", *targets],
                          env=env, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Each defconfig loaded once: name -> its output dir."""
    dirs = {}
    for defconfig in DEFCONFIGS:
        out = tmp_path_factory.mktemp(defconfig_id(defconfig))
        result = buildroot_make(out, defconfig.name, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        dirs[defconfig.name] = out
    return dirs


@needs_buildroot
@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_defconfig_survives_kconfig(loaded, defconfig):
    out = loaded[defconfig.name]
    ours = parse_config(defconfig)
    resolved = parse_config(out / ".config")

    dropped = {name: (value, resolved.get(name)) for name, value in ours.items()
               if resolved.get(name) != value}
    assert not dropped, f"kconfig changed (ours, resolved): {dropped}"

    buildroot_make(out, "savedefconfig", f"BR2_DEFCONFIG={out}/saved_defconfig")
    saved = parse_config(out / "saved_defconfig")
    # Everything that differs from Buildroot's defaults is written in ours.
    assert set(saved.items()) <= set(ours.items())

    # Paths without the tree's prefix are Buildroot's own files.
    for name in ("BR2_GLOBAL_PATCH_DIR", "BR2_LINUX_KERNEL_CUSTOM_CONFIG_FILE"):
        if ours.get(name):
            assert Path(BUILDROOT_DIR, unquote(ours[name])).exists(), name


@needs_buildroot
@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_packages_as_buildroot_sees_them(loaded, defconfig):
    names = ["PACKAGES", "NUTAPP_VERSION", "NUTAPP_SITE", "NUTAPP_SITE_METHOD",
             "NUTAPP_LICENSE", "PYTHON_GPIOZERO64_HASH_FILES"]
    printed = buildroot_make(loaded[defconfig.name], "printvars",
                             "VARS=" + " ".join(names)).stdout
    values = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    packages = set(values["PACKAGES"].split())

    wanted = {"nutapp", "python3", "python-serial", "python-pyusb", "python-cryptography",
              "openssl", "busybox"}
    if parse_config(defconfig).get("BR2_aarch64") == "y":
        wanted |= {"python-gpiozero64", "python-colorzero"}
        assert str(TOP / "package/python-gpiozero64/python-gpiozero64.hash") in \
            values["PYTHON_GPIOZERO64_HASH_FILES"].split()
    assert wanted <= packages
    if parse_config(defconfig).get("BR2_ROOTFS_DEVICE_CREATION_DYNAMIC_MDEV") == "y":
        # mdev is BusyBox's; eudev would only add a second set of rules.
        assert "eudev" not in packages

    version = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]["version"]
    assert values["NUTAPP_VERSION"] == version
    assert values["NUTAPP_SITE"] == str(TOP)
    assert values["NUTAPP_SITE_METHOD"] == "local"
    assert values["NUTAPP_LICENSE"] == "MIT"


SHELL_BUILTINS = {"echo", "printf", "test", "kill", "cd", "exit", "return", "read", "set",
                  "shift", "trap", "exec", "eval", "local", "export", "wait", "true",
                  "false", "case", "esac", "for", "done", "fi", "while", "if", "then",
                  "else", "elif", "do", "in", "break", "continue", "unset", "umask",
                  "command", "until"}


# Options of BusyBox applets that exist only with a feature built in.
APPLET_FLAGS = {
    ("syslogd", "C"): "FEATURE_IPC_SYSLOG",
    ("modprobe", "b"): "FEATURE_MODPROBE_BLACKLIST",
    ("mdev", "d"): "FEATURE_MDEV_DAEMON",
}

# BusyBox features a way of calling an applet needs: (pattern, feature).
APPLET_USES = [
    (r"\bsleep\s+\d*\.\d", "FLOAT_DURATION"),
    (r"\bmount\b[^\n]*\bLABEL=", "FEATURE_MOUNT_LABEL"),
]


def shell_code(text):
    """The parts of a shell script that are run: comments, quoted text and
    (so) awk programs dropped, each quoted word left as `_q`, but command
    substitutions inside double quotes kept, each as `$( ... )`."""
    text = text.replace("\\\n", " ")
    text = re.sub(r"\$\(\((?:[^()]|\([^()]*\))*\)\)", "0", text)  # arithmetic
    out = []
    stack = ["code"]  # "code", "sq", "dq", or a depth count of "$(" in a "dq"
    i = 0
    while i < len(text):
        c, mode = text[i], stack[-1]
        if mode == "sq":
            if c == "'":
                stack.pop()
        elif mode == "dq":
            if c == "\\":
                i += 1
            elif c == '"':
                stack.pop()
                out.append(" ")
            elif text.startswith("$(", i):
                stack.append(0)
                out.append(" $(")
                i += 1
        else:
            if c == "\\":
                out.append(text[i:i + 2])
                i += 1
            elif c == "'":
                stack.append("sq")
                out.append(" _q ")  # a word, though not a command name
            elif c == '"':
                stack.append("dq")
                out.append(" _q ")
            elif c == "#" and (i == 0 or text[i - 1] in " \t\n;"):
                while i < len(text) and text[i] != "\n":
                    i += 1
                continue
            elif isinstance(mode, int) and c == "(":
                stack[-1] += 1
                out.append(c)
            elif isinstance(mode, int) and c == ")":
                if mode == 0:
                    stack.pop()
                    out.append(" ; _ ")  # what follows is the outer command's
                else:
                    stack[-1] -= 1
                    out.append(c)
            else:
                out.append(c)
        i += 1
    return "".join(out)


def commands_called(script):
    """Names a shell script runs as commands (a heuristic, good enough for
    the overlay's plain scripts): the first word of each simple command,
    and the command xargs or chroot is given; not the script's own
    functions."""
    code = shell_code(script.read_text())
    functions = set(re.findall(r"^\s*([A-Za-z_]\w*)\s*\(\)", code, re.M))
    commands = set()
    for line in code.splitlines():
        # A case pattern ("start | stop) ..."): the first parenthesis closes.
        first = re.search(r"[()]", line)
        if first and first.group() == ")":
            line = line[first.end():]
        for part in re.split(r"\|\||&&|[|;&(`]|\$\(|\b(?:then|do|else|if|elif|while|until)\b",
                             line):
            words = [w for w in (part or "").split() if w not in ("!", "{", "}")]
            while words and re.match(r"^\w+=|^\d*[<>]", words[0]):
                # Assignments and redirections before the command.
                skip = 2 if re.fullmatch(r"\d*[<>]+&?", words[0]) else 1
                words = words[skip:]
            if not words:
                continue
            name = words[0].rsplit("/", 1)[-1]
            commands.add(name)
            if name in ("xargs", "chroot") and len(words) > 1:
                commands.update(w.rsplit("/", 1)[-1] for w in words[1:2])
    return {c for c in commands if re.fullmatch(r"[a-z][a-z0-9_-]*", c)} - SHELL_BUILTINS \
        - functions


def mdev_commands():
    """Programs etc/mdev.conf runs for an event (@, $ or * commands)."""
    commands = set()
    for line in (TOP / "overlay/etc/mdev.conf").read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = re.search(r"\s[@$*](\S+)", line)
        if m:
            commands.add(m.group(1).rsplit("/", 1)[-1])
    return commands


def overlay_scripts():
    return sorted(p for p in (TOP / "overlay").rglob("*")
                  if p.is_file() and p.read_bytes()[:2] == b"#!")


# Programs the overlay runs that a Buildroot package installs, rather than
# BusyBox: name -> the options that must be on for it.
PACKAGE_PROGRAMS = {
    "nutapp": ["BR2_PACKAGE_NUTAPP"],
    "nft": ["BR2_PACKAGE_NFTABLES"],
    "wpa_supplicant": ["BR2_PACKAGE_WPA_SUPPLICANT", "BR2_PACKAGE_WPA_SUPPLICANT_NL80211"],
    "wpa_cli": ["BR2_PACKAGE_WPA_SUPPLICANT_CLI"],
    "dropbear": ["BR2_PACKAGE_DROPBEAR"],
    "dropbearkey": ["BR2_PACKAGE_DROPBEAR"],
}


def test_commands_called_finds_commands_not_words():
    """The heuristic the checks below rely on, on a script like the
    overlay's."""
    script = TOP / "board/buildroot/common/post-build.sh"
    found = commands_called(script)
    assert {"rm", "mkdir", "ln", "chmod", "basename", "sed"} <= found
    # Functions, words in strings and comments, shell keywords: not commands.
    assert not found & {"log", "main", "removing", "keep", "for", "the", "finish"}
    network = commands_called(TOP / "overlay/usr/libexec/nutapp/network")
    assert {"wpa_supplicant", "udhcpc", "ip", "awk", "logger", "nft", "nutapp"} <= network
    # awk's program, in single quotes, is not shell.
    assert not network & {"print", "function", "found", "next", "static", "dhcp"}
    assert "dropbear" in commands_called(TOP / "overlay/etc/init.d/S57sshd")
    assert {"modprobe", "network", "mdev-ups"} <= mdev_commands()


def busybox_config(resolved):
    """BusyBox's configuration as a defconfig builds it: Buildroot's base
    file and this tree's fragments."""
    base = Path(BUILDROOT_DIR, unquote(resolved["BR2_PACKAGE_BUSYBOX_CONFIG"]))
    fragments = external_paths(resolved["BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES"])
    return kconfig_fragment([base, *fragments])


@needs_buildroot
@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_every_command_the_overlay_runs_is_in_the_image(loaded, defconfig):
    """Each program the overlay's scripts and mdev rules run is one of the
    overlay's own, a BusyBox applet that is on (with the features the
    call needs), or installed by a package the defconfig selects."""
    resolved = parse_config(loaded[defconfig.name] / ".config")
    busybox = busybox_config(resolved)
    own = {p.name for d in ("etc/init.d", "usr/libexec/nutapp")
           for p in (TOP / "overlay" / d).iterdir()}
    kmod_modprobe = resolved.get("BR2_PACKAGE_KMOD_TOOLS") == "y"

    scripts = overlay_scripts()
    assert scripts
    calls = {str(s.relative_to(TOP)): commands_called(s) for s in scripts}
    calls["overlay/etc/mdev.conf"] = mdev_commands()
    missing = {}
    for where, commands in calls.items():
        for command in commands:
            if command in own or (command == "modprobe" and kmod_modprobe):
                continue
            if command in PACKAGE_PROGRAMS:
                off = [o for o in PACKAGE_PROGRAMS[command] if resolved.get(o) != "y"]
                if off:
                    missing.setdefault(where, []).append(f"{command} ({', '.join(off)})")
            elif busybox.get("CONFIG_" + command.upper().replace("-", "_")) != "y":
                missing.setdefault(where, []).append(f"{command} (not a BusyBox applet "
                                                     "that is on, nor a known package's)")
    for script in scripts:
        text = shell_code(script.read_text())
        where = str(script.relative_to(TOP))
        for (command, flag), feature in APPLET_FLAGS.items():
            if command == "modprobe" and kmod_modprobe:
                continue  # kmod's modprobe, not BusyBox's
            if re.search(rf"\b{command}\b[^|;&\n]*\s-[a-zA-Z]*{flag}", text) \
                    and busybox.get(f"CONFIG_{feature}") != "y":
                missing.setdefault(where, []).append(f"{command} -{flag}")
        for pattern, feature in APPLET_USES:
            if re.search(pattern, text) and busybox.get(f"CONFIG_{feature}") != "y":
                missing.setdefault(where, []).append(f"{pattern} needs {feature}")
    assert not missing, f"not in the {defconfig_id(defconfig)} image: {missing}"


@needs_buildroot
def test_package_programs_are_what_the_recipes_install():
    """PACKAGE_PROGRAMS against Buildroot's recipes, where they name the
    programs (nftables and nutapp install theirs with `make install` and
    setuptools)."""
    recipes = {
        "wpa_supplicant": ("wpa_supplicant", "usr/sbin/wpa_supplicant"),
        "wpa_cli": ("wpa_supplicant", "usr/sbin/wpa_cli"),
        "dropbear": ("dropbear", "usr/sbin/dropbear"),
        "dropbearkey": ("dropbear", "DROPBEAR_TARGET_BINS = dropbearkey"),
    }
    for program, (package, text) in recipes.items():
        assert program in PACKAGE_PROGRAMS
        mk = Path(BUILDROOT_DIR, "package", package, f"{package}.mk").read_text()
        assert text in mk, f"{package}.mk does not install {program}"
    cli = Path(BUILDROOT_DIR, "package/wpa_supplicant/wpa_supplicant.mk").read_text()
    assert "ifeq ($(BR2_PACKAGE_WPA_SUPPLICANT_CLI),y)" in cli


def buildroot_packages(out):
    printed = buildroot_make(out, "printvars", "VARS=PACKAGES").stdout
    values = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    return set(values["PACKAGES"].split())


def recipe_init_scripts(package):
    """The start-up scripts Buildroot's recipe for PACKAGE installs."""
    mk = Path(BUILDROOT_DIR, "package", package, f"{package}.mk")
    if not mk.is_file():
        return set()
    return set(re.findall(r"\$\(TARGET_DIR\)/etc/init\.d/(S\d\d[\w.-]+)", mk.read_text()))


@needs_buildroot
@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_post_build_drops_every_package_init_script(loaded, defconfig, tmp_path):
    packages = buildroot_packages(loaded[defconfig.name])
    installed = set()
    for package in packages:
        installed |= recipe_init_scripts(package)
    # The ones that would start a second SSH server or the wrong firewall.
    assert {"S50dropbear", "S35nftables"} <= installed

    target = tmp_path / "target"
    (target / "etc/init.d").mkdir(parents=True)
    overlay = {p.name for p in (TOP / "overlay/etc/init.d").glob("S??*")}
    for name in installed | overlay:
        (target / "etc/init.d" / name).write_text("#!/bin/sh\n")
    result = run_script("post-build.sh", str(target),
                        str(board_dir(parse_config(defconfig))))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (target / "etc/init.d").iterdir()} == overlay


# Standard-library modules Buildroot's python3 builds only with an option
# (package/python3/python3.mk: py_cv_module_<C module>=n/a without it):
# module -> (C module, option).
PYTHON3_OPTIONAL = {
    "ssl": ("_ssl", "BR2_PACKAGE_PYTHON3_SSL"),
    "zlib": ("zlib", "BR2_PACKAGE_PYTHON3_ZLIB"),
    "gzip": ("zlib", "BR2_PACKAGE_PYTHON3_ZLIB"),
    "zipfile": ("zlib", "BR2_PACKAGE_PYTHON3_ZLIB"),
    "lzma": ("_lzma", "BR2_PACKAGE_PYTHON3_XZ"),
    "bz2": ("_bz2", "BR2_PACKAGE_PYTHON3_BZIP2"),
    "unicodedata": ("unicodedata", "BR2_PACKAGE_PYTHON3_UNICODEDATA"),
    "dbm": ("_dbm", "BR2_PACKAGE_PYTHON3_BERKELEYDB"),
}
# Left out whatever the options (configure flags, or a library never added).
PYTHON3_OMITTED = {"pydoc", "tkinter", "idlelib", "ensurepip", "test", "sqlite3", "curses",
                   "readline", "xml", "pyexpat", "lib2to3"}


def nutapp_imports():
    """Top-level names of every module nutapp imports, anywhere in a file."""
    names = set()
    for path in (TOP / "nutapp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


@needs_buildroot
@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_python3_has_the_modules_nutapp_imports(loaded, defconfig):
    resolved = parse_config(loaded[defconfig.name] / ".config")
    recipe = Path(BUILDROOT_DIR, "package/python3/python3.mk").read_text()
    imports = nutapp_imports()
    assert {"ssl", "json", "socket", "subprocess", "hashlib", "base64"} <= imports

    off = []
    for module in sorted(imports & set(PYTHON3_OPTIONAL)):
        c_module, option = PYTHON3_OPTIONAL[module]
        # The recipe drops the module without the option (so the table is
        # still Buildroot's).
        if option == "BR2_PACKAGE_PYTHON3_SSL":
            assert "py_cv_module__ssl=n/a" in recipe
        else:
            assert f"py_cv_module_{c_module}=n/a" in recipe, c_module
        if resolved.get(option) != "y":
            off.append(f"{module} ({option})")
    assert not off, f"nutapp imports modules this python3 leaves out: {off}"
    assert not imports & PYTHON3_OMITTED


@needs_buildroot
@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_dropbear_takes_the_options_s57sshd_gives(loaded, defconfig):
    """S57sshd's dropbear flags exist only when the features are built:
    -s/-g with password authentication (which the flags then turn off),
    -j/-k with TCP forwarding. Buildroot's recipe builds password
    authentication out when crypt() is missing; a localoptions file could
    build any of them out. Dropbear rejects an unknown flag and exits."""
    resolved = parse_config(loaded[defconfig.name] / ".config")
    line = next(line for line in (TOP / "overlay/etc/init.d/S57sshd").read_text().splitlines()
                if re.match(r"\s*if dropbear ", line))
    flags = set("".join(re.findall(r"\s-([a-zA-Z]+)", line)))
    assert {"s", "g", "j", "k"} <= flags
    needs = {"s": "DROPBEAR_SVR_PASSWORD_AUTH", "g": "DROPBEAR_SVR_PASSWORD_AUTH",
             "j": "DROPBEAR_SVR_LOCALTCPFWD", "k": "DROPBEAR_SVR_REMOTETCPFWD"}

    recipe = Path(BUILDROOT_DIR, "package/dropbear/dropbear.mk").read_text()
    assert "#if !HAVE_CRYPT" in recipe and "DROPBEAR_SVR_PASSWORD_AUTH 0" in recipe
    assert resolved.get("BR2_PACKAGE_LIBXCRYPT") == "y" or \
        resolved.get("BR2_PACKAGE_LINUX_PAM") == "y", "no crypt(): -s and -g would be refused"
    for path in external_paths(resolved.get("BR2_PACKAGE_DROPBEAR_LOCALOPTIONS_FILE", '""')):
        text = path.read_text()
        for flag in flags & set(needs):
            assert not re.search(rf"#define\s+{needs[flag]}\s+0\b", text), \
                f"{path.name} builds out {needs[flag]}, which dropbear -{flag} needs"


@needs_buildroot
@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=defconfig_id)
def test_firewall_protocol_names_resolve(loaded, defconfig):
    """nft looks the ruleset's protocol names up in /etc/protocols (the
    Debian-package image has netbase for it); here it is Buildroot's
    default skeleton's."""
    from nutapp.provision.firewall import ruleset

    resolved = parse_config(loaded[defconfig.name] / ".config")
    assert resolved.get("BR2_ROOTFS_SKELETON_DEFAULT") == "y"
    known = set()
    for line in Path(BUILDROOT_DIR, "system/skeleton/etc/protocols").read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2:
            known.add(words[0])
            known.update(words[2:])
    names = set(re.findall(r"\bl4proto\s+([a-z][\w-]*)", ruleset([], ssh=True)))
    assert {"icmp", "ipv6-icmp"} <= names
    assert names <= known, f"not in /etc/protocols: {names - known}"


def check_package_python():
    """An interpreter that has what utils/check-package imports."""
    for python in (sys.executable, "/usr/bin/python3"):
        if not shutil.which(python):
            continue
        probe = subprocess.run([python, "-c", "import magic, flake8"], capture_output=True)
        if probe.returncode == 0:
            return python
    return None


@needs_buildroot
def test_check_package_is_clean():
    python = check_package_python()
    if python is None or shutil.which("shellcheck") is None:
        pytest.skip("check-package needs python-magic and flake8 (Debian: python3-magic, "
                    "flake8) and shellcheck")
    files = []
    for entry in EXTERNAL_TREE:
        path = TOP / entry
        if path.is_file():
            files.append(path)
        else:
            files += sorted(p for p in path.rglob("*") if p.is_file())
    files = [str(p.relative_to(TOP)) for p in files if "__pycache__" not in p.parts]

    result = subprocess.run([python, str(Path(BUILDROOT_DIR, "utils/check-package")),
                             "-b", *files], cwd=TOP, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 warnings generated" in result.stderr + result.stdout
