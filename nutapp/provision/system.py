"""The appliance's own settings: host name, network, time, SSH keys.

They are written into the ``system/`` folder of the configuration, in the
formats the image's BusyBox tools read, and switched together with NUT's
files:

    hostname            one line
    interfaces          ifupdown format (BusyBox ifup): eth0, wlan0
    wpa_supplicant.conf Wi-Fi network, with the passphrase turned into its
                        256-bit key (what WPA uses; the passphrase itself
                        is not kept)
    ntp.servers         one time server per line, host or host:port
                        (nutapp timesync reads it)
    authorized_keys     OpenSSH public keys, for the SSH server
    nftables.conf       the firewall (firewall.py)
"""

import base64
import binascii
import hashlib
import re
import struct

DEFAULT_HOSTNAME = "nut"
DEFAULT_TIME_SERVERS = ["pool.ntp.org"]

SSH_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def render_hostname(hostname):
    return hostname + "\n"


def render_interfaces(ethernet, wifi, wpa_conf):
    eth = ethernet or {"mode": "dhcp"}
    out = ["# Written by nutapp provision from nutapp.conf.", "",
           "auto lo", "iface lo inet loopback", ""]
    if eth["mode"] == "static" and eth.get("address") is not None:
        addr = eth["address"]
        out += ["auto eth0", "iface eth0 inet%s static" % ("6" if addr.version == 6 else ""),
                "\taddress %s" % addr.ip, "\tnetmask %s" % (
                    addr.network.prefixlen if addr.version == 6 else addr.netmask)]
        if eth.get("gateway"):
            out.append("\tgateway %s" % eth["gateway"])
        out.append("")
    elif eth["mode"] == "dhcp":
        out += ["auto eth0", "iface eth0 inet dhcp", ""]
    if wifi:
        out += ["auto wlan0", "iface wlan0 inet dhcp",
                "\twpa-conf %s" % wpa_conf, ""]
    return "\n".join(out)


def render_resolv(ethernet):
    if not ethernet or ethernet["mode"] != "static" or not ethernet["dns"]:
        return None
    return "".join("nameserver %s\n" % d for d in ethernet["dns"])


def wpa_key(ssid, passphrase):
    """The 256-bit WPA key (hex) of a passphrase, as wpa_passphrase computes it."""
    if len(passphrase) == 64 and re.match(r"^[0-9a-fA-F]{64}$", passphrase):
        return passphrase.lower()
    raw = hashlib.pbkdf2_hmac("sha1", passphrase.encode("utf-8"), ssid.encode("utf-8"),
                              4096, 32)
    return raw.hex()


def render_wpa(wifi, key):
    ssid = wifi["ssid"].encode("utf-8").hex()
    return ("# Written by nutapp provision from nutapp.conf.\n"
            "ctrl_interface=/run/wpa_supplicant\n"
            "country=%s\n\n"
            "network={\n\tssid=%s\n\tpsk=%s\n\tkey_mgmt=WPA-PSK\n}\n"
            % (wifi["country"], ssid, key))


def installed_wpa(text):
    """``(ssid, key)`` from a wpa_supplicant.conf this module wrote, or None."""
    ssid = re.search(r"^\s*ssid=([0-9a-f]+)\s*$", text, re.M)
    key = re.search(r"^\s*psk=([0-9a-f]{64})\s*$", text, re.M)
    if not ssid or not key:
        return None
    return bytes.fromhex(ssid.group(1)).decode("utf-8", "replace"), key.group(1)


def render_ntp(servers):
    return "".join(s + "\n" for s in servers)


def check_authorized_keys(text, problems, filename="authorized_keys"):
    """Check OpenSSH public key lines; return the cleaned text."""
    keep = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = stripped.split()
        # Options (command="...",from="...") may come first.
        start = 0
        while start < len(words) and words[start] not in SSH_KEY_TYPES:
            start += 1
        if start == len(words) or start + 1 >= len(words):
            problems.add(filename, lineno, "this line is not an SSH public key",
                         "paste the one line of your id_ed25519.pub (or id_rsa.pub) file; "
                         "never the private key")
            continue
        kind, blob = words[start], words[start + 1]
        try:
            raw = base64.b64decode(blob, validate=True)
            (length,) = struct.unpack(">I", raw[:4])
            inner = raw[4:4 + length].decode("ascii")
        except (binascii.Error, struct.error, UnicodeDecodeError):
            inner = None
        if inner != kind:
            problems.add(filename, lineno, "the %s key on this line is damaged" % kind,
                         "copy the whole line again, in one piece")
            continue
        keep.append(stripped)
    if "PRIVATE KEY" in text:
        problems.add(filename, None, "this file contains a PRIVATE key",
                     "put only the public key (the .pub file) here, and keep the "
                     "private key on your computer")
    return "".join(k + "\n" for k in keep)
