"""Every mistake is reported in PROVISIONING-ERRORS.txt (file, line, what,
how to fix), the exit code is 3, and the working configuration stays."""

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from nutapp.provision import problems as codes

from provision_helpers import snapshot

GOOD = """\
[system]
hostname = nut

[ups myups]
driver = auto

[user admin]
role = admin
password = adminpass1
"""


@pytest.fixture
def installed(box):
    """A box with a working configuration installed; returns its snapshot."""
    box.put("nutapp.conf", GOOD)
    assert box.run() == 0
    return snapshot(box.etc), snapshot(os.path.join(box.data, "nut"))


def refused(box, installed, *expected):
    """Run, expect exit 3 and an errors file naming each `expected` text;
    the installed configuration must not have changed."""
    assert box.run() == codes.EXIT_INVALID
    report = box.errors()
    for text in expected:
        assert text in report, report
    assert (snapshot(box.etc), snapshot(os.path.join(box.data, "nut"))) == installed
    assert "Nothing was changed" in report and "How to fix it:" in report
    return report


def test_broken_ups_conf_line(box, installed):
    box.put("nutapp.conf", GOOD.replace("[ups myups]\ndriver = auto\n", ""))
    box.put("ups.conf", '[myups]\n\tdriver = dummy-ups\n\tport = "ups.dev\n')
    refused(box, installed, "ups.conf line 3", "unbalanced quotes")


def test_ups_conf_without_port_and_with_a_bad_line(box, installed):
    box.put("nutapp.conf", GOOD.replace("[ups myups]\ndriver = auto\n", ""))
    box.put("ups.conf", "[a]\n\tdriver = dummy-ups\n\n[b]\n\tdriver = dummy-ups\n"
                        "\tport = x y z\n\tport = 1\n")
    report = refused(box, installed, "ups.conf line 1", "[a] has no port = line",
                     "ups.conf line 6", "not `name = value`")
    assert report.count("What is wrong") == 2


@pytest.mark.parametrize("name, text, line", [
    ("ups.conf", "[myups]\n\tdriver = apcupsd-ups9\n\tport = auto\n", "ups.conf line 2"),
    ("nutapp.conf", GOOD.replace("driver = auto", "driver = usbhid-upz"), "nutapp.conf line 5"),
])
def test_unknown_driver(box, installed, name, text, line):
    if name == "ups.conf":
        box.put("nutapp.conf", GOOD.replace("[ups myups]\ndriver = auto\n", ""))
    box.put(name, text)
    report = refused(box, installed, line, "nutapp has no driver called")
    assert "usbhid-ups" in report  # the fix lists the drivers there are


@pytest.mark.parametrize("setting, where, what", [
    ("allow = 192.168.1.5/24", "line 2", "host bits set"),
    ("allow = 192.168.1.0/24, lan", "line 2", "'lan' is not a network"),
    ("allow = 10.0.0.0/33", "line 2", "is not a network"),
    ("time_servers = bad_name!", "line 2", "not a host name"),
    ("hostname = my.nut.box", "line 2", "not a usable host name"),
    ("hostname = -nut", "line 2", "not a usable host name"),
])
def test_bad_system_values(box, installed, setting, where, what):
    box.put("nutapp.conf", GOOD.replace("hostname = nut", setting))
    refused(box, installed, "nutapp.conf " + where, what)


@pytest.mark.parametrize("ethernet, what", [
    ("mode = static\naddress = 192.168.1.20", "needs its prefix length"),
    ("mode = static\naddress = 192.168.1.0/24", "network's own or broadcast"),
    ("mode = static\naddress = 192.168.1.20/24\ngateway = 192.168.2.1", "not in the network"),
    ("mode = static\naddress = 192.168.1.20/24\ndns = 1.2.3", "not an IP address"),
    ("mode = dhcp\naddress = 192.168.1.20/24", "ethernet mode is dhcp"),
    ("mode = wireless", "not dhcp, static or off"),
])
def test_bad_network(box, installed, ethernet, what):
    box.put("nutapp.conf", GOOD + "\n[ethernet]\n" + ethernet + "\n")
    refused(box, installed, "nutapp.conf line 1", what)


@pytest.mark.parametrize("wifi, what", [
    ("ssid = Home\npsk = short\ncountry = GB", "8 to 63"),
    ("ssid = Home\npsk = long-enough-pw", "country"),
    ("ssid = Home\ncountry = GB", "has no password"),
])
def test_bad_wifi(box, installed, wifi, what):
    box.put("nutapp.conf", GOOD + "\n[wifi]\n" + wifi + "\n")
    refused(box, installed, what)


def test_duplicate_user_in_settings(box, installed):
    box.put("nutapp.conf", GOOD + "\n[user admin]\nrole = readonly\npassword = other-pass\n")
    refused(box, installed, "nutapp.conf line 11", "the user admin is defined twice")


def test_duplicate_user_differing_in_case(box, installed):
    box.put("nutapp.conf", GOOD + "\n[user Admin]\nrole = readonly\npassword = other-pass\n")
    refused(box, installed, "nutapp.conf line 11", "defined twice")


def test_duplicate_user_in_upsd_users(box, installed):
    box.put("nutapp.conf", GOOD.split("[user")[0])
    box.put("upsd.users", "[mon]\n\tpassword = monpass123\n\tupsmon secondary\n"
                          "[mon]\n\tpassword = monpass456\n")
    refused(box, installed, "upsd.users line 4",
            "the user [mon] is defined twice (also line 1)")


def test_users_in_two_places(box, installed):
    box.put("upsd.users", "[mon]\n\tpassword = monpass123\n\tupsmon secondary\n")
    refused(box, installed, "users are set both here and in upsd.users")


@pytest.mark.parametrize("password, what", [
    ("CHANGE-ME", "example password"),
    ("short", "shorter than 8"),
    ("has space", "spaces"),
    ("", "has no password"),
    ("$scrypt$n=16384,r=8,p=1$garbage", "hash of user admin is damaged"),
])
def test_unusable_passwords(box, installed, password, what):
    box.put("nutapp.conf", GOOD.replace("password = adminpass1", "password = " + password))
    refused(box, installed, "nutapp.conf line 9", what)


@pytest.mark.parametrize("role", ["admin", "primary"])
def test_short_password_only_for_login_only_roles(box, installed, role):
    """A NAS box's fixed short password is for users that can only log in."""
    box.put("nutapp.conf", GOOD.replace("role = admin", "role = " + role)
            .replace("password = adminpass1", "password = secret"))
    refused(box, installed, "nutapp.conf line 9", "shorter than 8",
            "only a secondary or readonly user")


@pytest.mark.parametrize("more", ["\tupsmon master\n", "\tupsmon primary\n",
                                  "\tupsmon slave\n\tinstcmds = test.battery.start\n",
                                  "\tupsmon slave\n\tactions = SET\n"])
def test_short_password_in_upsd_users_with_rights(box, installed, more):
    box.put("nutapp.conf", GOOD.split("[user")[0])
    box.put("upsd.users", "[monuser]\n\tpassword = secret\n" + more)
    refused(box, installed, "upsd.users line 2", "shorter than 8")


@pytest.mark.parametrize("role", ["secondary", "readonly"])
def test_short_password_for_login_only_roles(box, installed, role):
    box.put("nutapp.conf", GOOD.replace("role = admin", "role = " + role)
            .replace("password = adminpass1", "password = secret"))
    assert box.run() == codes.EXIT_OK, box.errors()


@pytest.mark.parametrize("more", ["\tupsmon slave\n", "\tupsmon secondary\n", ""])
def test_short_password_in_upsd_users_for_login_only(box, installed, more):
    box.put("nutapp.conf", GOOD.split("[user")[0])
    box.put("upsd.users", "[monuser]\n\tpassword = secret\n" + more)
    assert box.run() == codes.EXIT_OK, box.errors()


def test_unknown_setting_section_and_role(box, installed):
    box.put("nutapp.conf", GOOD.replace("role = admin", "role = boss")
            + "\n[printer]\nx = 1\n[system]\n")
    refused(box, installed, "the section [system] appears twice")
    box.put("nutapp.conf", GOOD.replace("role = admin", "role = boss")
            + "hostnme = x\n\n[printer]\nx = 1\n")
    refused(box, installed, "nutapp.conf line 8", "needs a role",
            "nutapp.conf line 10", "has no setting called hostnme",
            "nutapp.conf line 12", "unknown section [printer]")


def test_bad_driver_option_name(box, installed):
    box.put("nutapp.conf", GOOD.replace("driver = auto", "driver = auto\npoll interval = 5"))
    refused(box, installed, "nutapp.conf line 6", "'poll interval' is not a driver option")


def test_not_an_ini_file(box, installed):
    box.put("nutapp.conf", "hostname = nut\n")
    refused(box, installed, "nutapp.conf line 1", "before any [section]")


def test_upsd_conf_directives(box, installed):
    box.put("upsd.conf", "LISTEN 0.0.0.0 3493\nLISTEN nowhere\nMAXAGE soon\n"
                         "CERTFILE /etc/elsewhere.pem\nFOO 1\n")
    refused(box, installed, "upsd.conf line 2", "not an IP address",
            "upsd.conf line 3", "not a number", "upsd.conf line 4", "set by provisioning",
            "upsd.conf line 5", "no directive FOO")


def test_upsmon_conf(box, installed):
    box.put("upsmon.conf", "MONITOR myups@localhost 1 admin adminpass1 boss\n"
                           "MONITOR myups@localhost 1 admin\nPOLLFREQ fast\n")
    refused(box, installed, "upsmon.conf line 1", "primary or secondary",
            "upsmon.conf line 2", "takes 5 value(s)", "upsmon.conf line 3", "not a number")
    assert box.has("upsmon.conf")  # nothing is taken away after a refusal


def test_not_utf8(box, installed):
    box.put("ups.conf", b"[myups]\n\tdesc = \"caf\xe9\"\n")
    refused(box, installed, "ups.conf", "not plain text")


# --- certificates ---------------------------------------------------------

def _cert(key, name="nut"):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()))


def _pem(obj, password=None):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def test_cert_and_key_that_do_not_match(box, installed):
    box.put("upsd.crt", _pem(_cert(ec.generate_private_key(ec.SECP256R1()))))
    box.put("upsd.key", _pem(ec.generate_private_key(ec.SECP256R1())))
    refused(box, installed, "upsd.key", "does not belong to the certificate")
    assert box.has("upsd.key")  # a refused key stays where it was


def test_unreadable_keys(box, installed):
    key = ec.generate_private_key(ec.SECP256R1())
    box.put("upsd.crt", _pem(_cert(key)))
    box.put("upsd.key", _pem(key, password=b"secret"))
    refused(box, installed, "upsd.key", "protected by a passphrase")
    box.put("upsd.key", b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    refused(box, installed, "upsd.key", "damaged")
    box.put("upsd.key", b"just some text\n")
    refused(box, installed, "upsd.key", "no PEM private key")


def test_key_file_that_cannot_be_read(box, installed):
    # What a damaged FAT entry looks like to open(): an I/O error. A folder
    # in its place gives the same path through the code, also as root.
    box.put("upsd.crt", _pem(_cert(ec.generate_private_key(ec.SECP256R1()))))
    os.mkdir(os.path.join(box.boot, "upsd.key"))
    refused(box, installed, "upsd.key", "cannot read this file")


def test_damaged_certificate(box, installed):
    box.put("upsd.crt", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    box.put("upsd.key", _pem(ec.generate_private_key(ec.SECP256R1())))
    refused(box, installed, "upsd.crt", "certificate is damaged")


def test_ed25519_and_small_rsa_are_refused(box, installed):
    key = ed25519.Ed25519PrivateKey.generate()
    box.put("upsd.crt", _pem(_cert(key)))
    box.put("upsd.key", _pem(key))
    refused(box, installed, "Ed25519")
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    box.put("upsd.crt", _pem(_cert(key)))
    box.put("upsd.key", _pem(key))
    refused(box, installed, "1024 bits")


def test_key_without_cert_and_cert_without_key(box, installed):
    box.put("upsd.key", _pem(ec.generate_private_key(ec.SECP256R1())))
    refused(box, installed, "a private key without its certificate")
    os.unlink(os.path.join(box.boot, "upsd.key"))
    box.put("upsd.crt", _pem(_cert(ec.generate_private_key(ec.SECP256R1()))))
    refused(box, installed, "upsd.crt", "no private key for this certificate")


# --- the report itself ------------------------------------------------------

def test_every_problem_at_once_then_fixed(box, installed):
    box.put("nutapp.conf", GOOD.replace("hostname = nut", "hostname = no_way")
            .replace("adminpass1", "short") + "\n[ethernet]\nmode = static\n")
    box.put("ups.conf", "[x]\n")
    report = refused(box, installed, "usable host name", "shorter than", "prefix length",
                     "has no driver", "UPSes are set both here and in ups.conf")
    assert report.count("What is wrong") == 6
    assert "\r\n" in report

    # The same problems again: the report is not rewritten.
    mtime = os.stat(os.path.join(box.boot, "PROVISIONING-ERRORS.txt")).st_mtime_ns
    steps = []
    assert box.run(step_hook=lambda n, what: steps.append(what)) == codes.EXIT_INVALID
    assert steps == []
    assert os.stat(os.path.join(box.boot, "PROVISIONING-ERRORS.txt")).st_mtime_ns == mtime

    # Fixed: imported, and the report is gone.
    os.unlink(os.path.join(box.boot, "ups.conf"))
    box.put("nutapp.conf", GOOD.replace("hostname = nut", "hostname = fixed"))
    assert box.run() == 0
    assert not box.has("PROVISIONING-ERRORS.txt")
    assert box.etc_text("system/hostname") == "fixed\n"


def test_etc_that_is_a_folder_with_files(box):
    os.makedirs(box.etc)
    with open(os.path.join(box.etc, "ups.conf"), "w") as f:
        f.write("[old]\n")
    box.put("nutapp.conf", GOOD)
    assert box.run() == codes.EXIT_INVALID
    assert "is a folder with files" in box.errors()
    assert os.listdir(box.etc) == ["ups.conf"]
    assert snapshot(box.data) == {}


@pytest.mark.parametrize("line, what", [
    ("allowfrom = 192.168.1.0/24, 10.0.0.0/8", "separated by spaces"),
    ("allowfrom = 192.168.1.1/24", "host bits set"),
    ("allowfrom = the-nas", "not a network or an IP address"),
])
def test_bad_allowfrom_in_upsd_users(box, installed, line, what):
    box.put("nutapp.conf", GOOD.split("[user")[0])
    box.put("upsd.users", "[ha]\n\tpassword = hapass123\n\tinstcmds = test.battery.start\n"
                          "\t%s\n" % line)
    refused(box, installed, "upsd.users line 4", what)
