"""`nutapp provision` end to end: what ends up installed, with which owners
and modes, what is left in the boot folder, and that a second run with
nothing new writes nothing."""

import grp
import os
import shutil
import stat

import pytest

from nutapp.core.parseconf import parse_text
from nutapp.passwords import is_hashed, verify_password
from nutapp.provision import problems as codes

from provision_helpers import EXAMPLES, snapshot

SETTINGS = """\
[system]
hostname = pi-nut
allow = 192.168.10.0/24, fd00:1::/64
time_servers = ntp1.example.org, 192.0.2.123

[ethernet]
mode = static
address = 192.168.10.20/24
gateway = 192.168.10.1
dns = 192.168.10.1

[wifi]
ssid = Home Net
psk = wifi-pass-123
country = gb

[ups rack]
driver = auto
desc = "Rack UPS"

[user admin]
role = admin
password = adminpass1

[user nas]
role = primary
password = naspass12

[user pc]
role = secondary
password = pcpass123

[user ha]
role = readonly
password = hapass123
"""


def users_of(text):
    users, name = {}, None
    for _, words in parse_text(text):
        if words[0].startswith("["):
            name = words[0][1:-1]
            users[name] = {}
        else:
            users[name][words[0]] = words[1:]
    return users


def test_settings_file_installs_everything(box):
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == codes.EXIT_OK

    # NUT's files, readable by the nut group only.
    gid = grp.getgrnam(box.group).gr_gid
    for name in ("ups.conf", "upsd.conf", "upsd.users", "upsd.pem"):
        st = os.stat(os.path.join(box.etc, name))
        assert stat.S_IMODE(st.st_mode) == 0o640, name
        assert (st.st_uid, st.st_gid) == (0, gid), name
    st = os.stat(box.etc)
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == gid
    state = os.stat(os.path.join(box.data, "nut", "state"))
    assert stat.S_IMODE(state.st_mode) == 0o770 and state.st_gid == gid
    system = os.stat(os.path.join(box.etc, "system"))
    assert stat.S_IMODE(system.st_mode) == 0o700 and system.st_gid == 0
    for name in os.listdir(os.path.join(box.etc, "system")):
        st = os.stat(os.path.join(box.etc, "system", name))
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, name
    assert os.path.islink(box.etc)
    assert os.path.realpath(box.etc) == os.path.realpath(
        os.path.join(box.data, "nut", "current"))

    ups = box.etc_text("ups.conf")
    assert "[rack]" in ups and "driver = usbhid-ups" in ups and "port = auto" in ups
    assert 'desc = "Rack UPS"' in ups
    upsd = box.etc_text("upsd.conf")
    assert "CERTFILE %s" % os.path.join(os.path.abspath(box.etc), "upsd.pem") in upsd
    assert "LISTEN * 3493" in upsd

    users = users_of(box.etc_text("upsd.users"))
    assert set(users) == {"admin", "nas", "pc", "ha"}
    assert users["admin"]["actions"] == ["=", "SET", "FSD"]
    assert users["admin"]["instcmds"] == ["=", "ALL"]
    assert users["nas"]["upsmon"] == ["primary"]
    assert users["pc"]["upsmon"] == ["secondary"]
    assert set(users["ha"]) == {"password"}
    stored = users["admin"]["password"][1]
    assert is_hashed(stored) and verify_password(stored, "adminpass1")

    assert box.etc_text("system/hostname") == "pi-nut\n"
    interfaces = box.etc_text("system/interfaces")
    assert "address 192.168.10.20" in interfaces and "netmask 255.255.255.0" in interfaces
    assert "gateway 192.168.10.1" in interfaces and "iface wlan0 inet dhcp" in interfaces
    wpa = box.etc_text("system/wpa_supplicant.conf")
    assert "wifi-pass-123" not in wpa and "country=GB" in wpa
    assert "ssid=%s" % b"Home Net".hex() in wpa
    assert box.etc_text("system/ntp.servers") == "ntp1.example.org\n192.0.2.123\n"
    assert box.etc_text("system/resolv.conf") == "nameserver 192.168.10.1\n"
    fw = box.etc_text("system/nftables.conf")
    assert "192.168.10.0/24" in fw and "fd00:1::/64" in fw and "tcp dport { 3493 }" in fw


def test_wpa_key_is_what_wpa_passphrase_computes(box):
    # wpa_passphrase "Home Net" wifi-pass-123, computed independently of
    # system.py with hashlib's PBKDF2 (IEEE 802.11i: 4096 rounds of SHA-1).
    import hashlib

    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    key = hashlib.pbkdf2_hmac("sha1", b"wifi-pass-123", b"Home Net", 4096, 32).hex()
    assert "psk=%s" % key in box.etc_text("system/wpa_supplicant.conf")


def test_secrets_leave_the_boot_folder(box):
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    text = box.boot_text("nutapp.conf")
    for secret in ("adminpass1", "naspass12", "pcpass123", "hapass123", "wifi-pass-123"):
        assert secret not in text
    assert "\r\n" in text  # written for Notepad
    # The rest of the file is as the person wrote it.
    assert "hostname = pi-nut" in text and "ssid = Home Net" in text
    assert text.count("password = $scrypt$") == 4
    imported = box.boot_text("IMPORTED.txt")
    assert "removed from nutapp.conf" in imported and "Wi-Fi password" in imported
    installed_line = [x for x in imported.splitlines() if "installed:" in x][0]
    assert "system/hostname" in installed_line and "upsd.users" in installed_line
    assert not box.has("PROVISIONING-ERRORS.txt")

    # The public certificate and its fingerprint are there for clients.
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(box.boot_text("SERVER-CERTIFICATE.pem").encode())
    from nutapp.provision.tls import fingerprint

    assert fingerprint(cert) in box.boot_text("SERVER-CERTIFICATE-SHA256.txt")


def test_second_run_with_nothing_new_writes_nothing(box):
    box.put("nutapp.conf", SETTINGS)
    box.put("authorized_keys", SSH_KEY + "\n")
    assert box.run() == 0
    before = snapshot(os.path.dirname(box.boot)), snapshot(box.data)
    mtimes = [os.lstat(os.path.join(r, n)).st_mtime_ns
              for top in (box.boot, box.data) for r, ds, fs in os.walk(top) for n in ds + fs]
    steps = []
    assert box.run(step_hook=lambda n, what: steps.append(what)) == 0
    assert steps == []
    assert (snapshot(os.path.dirname(box.boot)), snapshot(box.data)) == before
    assert mtimes == [os.lstat(os.path.join(r, n)).st_mtime_ns
                      for top in (box.boot, box.data) for r, ds, fs in os.walk(top)
                      for n in ds + fs]


def test_plain_password_matching_the_installed_hash_keeps_it(box):
    # A run cut short before the boot folder was rewritten leaves the plain
    # password there: importing it again must not make a new configuration.
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    installed = snapshot(box.etc)
    box.put("nutapp.conf", SETTINGS)  # plain passwords again
    assert box.run() == 0
    assert snapshot(box.etc) == installed
    assert "adminpass1" not in box.boot_text("nutapp.conf")


def test_files_dropped_later_are_imported_on_the_next_run(box):
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    first = os.path.realpath(box.etc)
    users_before = box.etc_text("upsd.users")

    box.put("authorized_keys", SSH_KEY + "\n")
    assert box.run() == 0
    assert os.path.realpath(box.etc) != first
    assert box.etc_text("system/authorized_keys") == SSH_KEY + "\n"
    assert "tcp dport { 3493, 22 }" in box.etc_text("system/nftables.conf")
    assert box.etc_text("upsd.users") == users_before  # the rest is kept as it was
    # The old version stays as a fallback; older ones go.
    assert len(os.listdir(os.path.join(box.data, "nut", "versions"))) == 2
    assert box.boot_text("IMPORTED.txt").count("nutapp provision imported") == 2

    box.put("upsmon.conf", "MONITOR rack@localhost 1 nas naspass12 primary\n")
    assert box.run() == 0
    assert "naspass12" in box.etc_text("upsmon.conf")
    assert not box.has("upsmon.conf")  # it holds a password
    assert len(os.listdir(os.path.join(box.data, "nut", "versions"))) == 2
    # Gone from the boot folder, kept in the appliance.
    assert box.run() == 0
    assert "naspass12" in box.etc_text("upsmon.conf")


def test_empty_boot_folder_gives_a_working_default(box):
    assert box.run() == 0
    assert "driver = usbhid-ups" in box.etc_text("ups.conf")
    assert box.etc_text("system/hostname") == "nut\n"
    assert "iface eth0 inet dhcp" in box.etc_text("system/interfaces")
    assert box.has("SERVER-CERTIFICATE.pem")
    assert "local_v4" in box.etc_text("system/nftables.conf")


def test_nut_files_are_used_as_given(box):
    box.put("ups.conf", "[myups]\n\tdriver = dummy-ups\n\tport = ups.dev\n")
    box.put("upsd.conf", "LISTEN 0.0.0.0 3493\nMAXAGE 20\n")
    box.put("upsd.users", "[admin]\n\tpassword = adminpass1\n\tactions = SET\n"
                          "\tinstcmds = ALL\n\n[mon]\n\tpassword = \"monpass12\"\n"
                          "\tupsmon primary\n")
    assert box.run() == 0
    assert box.etc_text("ups.conf") == "[myups]\n\tdriver = dummy-ups\n\tport = ups.dev\n"
    upsd = box.etc_text("upsd.conf")
    assert upsd.startswith("LISTEN 0.0.0.0 3493\nMAXAGE 20\n") and "CERTFILE" in upsd
    users = users_of(box.etc_text("upsd.users"))
    assert verify_password(users["admin"]["password"][1], "adminpass1")
    assert verify_password(users["mon"]["password"][1], "monpass12")
    assert users["mon"]["upsmon"] == ["primary"]
    # The boot copy keeps its layout, with hashes instead of passwords.
    boot = box.boot_text("upsd.users")
    assert "adminpass1" not in boot and "monpass12" not in boot
    assert boot.replace("\r\n", "\n").count("\tpassword = \"$scrypt$") == 2
    assert box.run(step_hook=lambda n, w: pytest.fail("wrote " + w)) == 0


def test_dry_run_and_check_change_nothing(box, capsys):
    box.put("nutapp.conf", SETTINGS)
    # The boot folder is fine, but nothing is installed yet.
    assert box.run("--check") == codes.EXIT_CHECK
    assert "no configuration installed" in capsys.readouterr().out
    assert box.run("--dry-run") == 0
    assert snapshot(box.data) == {} and not os.path.lexists(box.etc)
    assert box.boot_text("nutapp.conf") == SETTINGS
    assert os.listdir(box.boot) == ["nutapp.conf"]
    assert box.run() == 0
    assert box.run("--check") == 0


def test_check_reports_weak_modes(box, capsys):
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    os.chmod(os.path.join(box.etc, "upsd.users"), 0o644)
    os.chmod(os.path.join(box.data, "nut", "state"), 0o777)
    assert box.run("--check") == codes.EXIT_CHECK
    out = capsys.readouterr().out
    assert "upsd.users: mode 0644, wanted 0640" in out
    assert "state: mode 0777, wanted 0770" in out
    # The next provisioning run repairs them.
    assert box.run() == 0
    assert box.run("--check") == 0
    assert stat.S_IMODE(os.stat(os.path.join(box.etc, "upsd.users")).st_mode) == 0o640


def test_example_file_works_as_shipped_and_refuses_the_example_password(box):
    shutil.copy(os.path.join(EXAMPLES, "nutapp.conf"), box.boot)
    assert box.run() == 0  # as shipped: a USB UPS, DHCP, read-only access
    assert "[myups]" in box.etc_text("ups.conf")
    assert box.etc_text("system/hostname") == "nut\n"
    assert "wpa_supplicant.conf" not in os.listdir(os.path.join(box.etc, "system"))

    text = box.boot_text("nutapp.conf")
    text = text.replace("#[user admin]\n#role = admin\n#password = CHANGE-ME",
                        "[user admin]\nrole = admin\npassword = CHANGE-ME")
    box.put("nutapp.conf", text)
    assert box.run() == codes.EXIT_INVALID
    assert "example password" in box.errors()
    box.put("nutapp.conf", text.replace("CHANGE-ME", "a-real-password"))
    assert box.run() == 0
    assert not box.has("PROVISIONING-ERRORS.txt")
    assert "[admin]" in box.etc_text("upsd.users")


def test_example_file_nas_user_as_the_comments_say(box):
    """The example's Synology user, uncommented as its comment says."""
    text = open(os.path.join(EXAMPLES, "nutapp.conf")).read()
    for line in ("[user monuser]", "role = secondary", "password = secret"):
        assert "#" + line + "\n" in text
        text = text.replace("#" + line + "\n", line + "\n")
    text = text.replace("[ups myups]", "[ups ups]")
    box.put("nutapp.conf", text)
    assert box.run() == 0, box.errors()
    users = users_of(box.etc_text("upsd.users"))
    assert users["monuser"]["upsmon"] == ["secondary"]
    assert verify_password(users["monuser"]["password"][1], "secret")
    assert "[ups]" in box.etc_text("ups.conf")


SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
           " person@laptop")


def test_unwritable_data_partition_is_exit_4(box, tmp_path):
    not_a_folder = tmp_path / "data-is-a-file"
    not_a_folder.write_text("")
    box.data = str(not_a_folder)
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == codes.EXIT_INSTALL
    assert box.boot_text("nutapp.conf") == SETTINGS  # secrets stay until installed
    assert not box.has("IMPORTED.txt")


def test_through_the_nutapp_command(box):
    from nutapp.cli import main as nutapp

    box.put("nutapp.conf", SETTINGS)
    assert nutapp(["provision"] + box.argv()) == 0
    assert nutapp(["provision"] + box.argv("--check")) == 0


def test_upsd_users_with_allowfrom_and_narrow_instcmds(box):
    """SECURITY.md's advice for Home Assistant, followed on the card: a user
    of its own with one command, from one address."""
    box.put("nutapp.conf", "[ups rack]\ndriver = auto\n")
    box.put("upsd.users", "[ha]\n\tpassword = hapass123\n\tinstcmds = test.battery.start\n"
                          "\tallowfrom = 192.168.1.50/32 fd00:1::/64\n")
    assert box.run() == 0, box.errors()
    users = users_of(box.etc_text("upsd.users"))
    assert users["ha"]["allowfrom"] == ["=", "192.168.1.50/32", "fd00:1::/64"]
    assert users["ha"]["instcmds"] == ["=", "test.battery.start"]
    assert verify_password(users["ha"]["password"][1], "hapass123")
