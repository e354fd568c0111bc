"""The provisioned network, booted in QEMU: a static Ethernet address, and
Wi-Fi on a simulated radio.

Settings go onto the card's boot partition with mtools, as a person would
put them there; the appliance imports them on its first boot and brings the
network up from what it imported.

- Static: the guest is told 10.0.2.20/24 (QEMU's DHCP would give it
  10.0.2.15), and the host's forwarded port reaches 10.0.2.20 only, so NUT
  answers only if the static address took effect; no DHCP client runs.
- Wi-Fi: QEMU has no radio, but mac80211_hwsim makes two that hear each
  other. The guest's first one (wlan0) is the appliance's, as provisioned;
  the test makes the second (wlan1) an access point with the image's own
  tools (wpa_supplicant in AP mode, BusyBox udhcpd). An access point with
  another passphrase is refused; the right one gives wlan0 a lease, whose
  subnet the firewall then admits as "local". When the radio goes, what
  ran for it stops, and it starts again when the radio comes back.
- Firewall: with `allow` naming a network the host is not in, the
  forwarded connections are refused while upsd serves on the box.
"""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

import qemu_vm
from test_qemu_boot import BOOT_TIMEOUT, image  # noqa: F401  (the image fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root"),
]

STATIC = """[system]
hostname = pi-static

[ethernet]
mode = static
address = 10.0.2.20/24
gateway = 10.0.2.2
dns = 10.0.2.3

[ups myups]
driver = auto
"""

SSID = "nutapp-test-net"
PASSPHRASE = "Correct-Horse-77"
WIFI = """[system]
hostname = pi-wifi

[ethernet]
mode = dhcp

[wifi]
ssid = %s
psk = %s
country = GB

[ups myups]
driver = auto
""" % (SSID, PASSPHRASE)


def mtools(*argv):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, env=env)


def provisioned_card(image, tmp_path, settings):  # noqa: F811
    card = str(tmp_path / "card.img")
    shutil.copyfile(image, card)
    fat = "%s@@%d" % (card, qemu_vm.BOOT_PARTITION_OFFSET)
    path = tmp_path / "nutapp.conf"
    path.write_text(settings)
    mtools("mmd", "-i", fat, "::/nut")
    mtools("mcopy", "-i", fat, str(path), "::/nut/nutapp.conf")
    return card


def wait_for(vm, command, predicate, timeout, what):
    """Run `command` in the guest until its output satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    while True:
        status, out = vm.run(command, timeout=60)
        if predicate(out):
            return out
        assert time.monotonic() < deadline, "%s never happened; last output:\n%s\n%s" % (
            what, out, vm.text()[-3000:])
        time.sleep(2)


def test_static_ethernet_address(image, tmp_path):  # noqa: F811
    card = provisioned_card(image, tmp_path, STATIC)
    vm = qemu_vm.Vm(card, root=None, copy=False, append="nutapp.debug=1",
                    guest="10.0.2.20").start()
    try:
        vm.expect(r"nutapp-status: boot-complete", BOOT_TIMEOUT)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while qemu_vm.nut_list_ups(vm.port) != ["myups"]:
            assert time.monotonic() < deadline, "NUT never answered on 10.0.2.20:\n" + vm.text()
            time.sleep(0.5)
        assert "nutapp-status: network-static eth0 10.0.2.20/24 via 10.0.2.2" in vm.text()

        status, addr = vm.run("ip -4 addr show dev eth0")
        assert "inet 10.0.2.20/24" in addr and "10.0.2.15" not in addr, addr
        status, routes = vm.run("ip -4 route")
        assert "default via 10.0.2.2 dev eth0" in routes, routes
        status, resolv = vm.run("cat /etc/resolv.conf")
        assert resolv.strip() == "nameserver 10.0.2.3", resolv
        # The services' chroot sees the same name servers (upsmon's hosts).
        status, jailed = vm.run("chroot /run/nutapp/root cat /etc/resolv.conf")
        assert jailed.strip() == "nameserver 10.0.2.3", jailed
        status, procs = vm.run("ps | grep -c '[u]dhcpc' || true")
        assert procs.strip() == "0", "a DHCP client runs:\n" + procs
        # The firewall admits the static address's network as "local" (the
        # forwarded connections come from 10.0.2.2).
        status, rules = vm.run("nft list ruleset")
        assert "10.0.2.0/24" in rules, rules
    finally:
        vm.stop()


ELSEWHERE = """[system]
hostname = pi-closed
allow = 192.168.99.0/24

[ethernet]
mode = dhcp

[ups myups]
driver = auto
"""


def ver_answered(port):
    """Whether `VER` through the forwarded port gets upsd's answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"VER\n")
            return s.recv(200).startswith(b"Network UPS Tools")
    except OSError:
        return False


def test_firewall_refuses_networks_not_allowed(image, tmp_path):  # noqa: F811
    """allow = a network the host is not in: the forwarded connections (from
    10.0.2.2) are refused while upsd serves on the box; admitting 10.0.2.2
    by hand then lets the same connection through, so the refusal was the
    firewall's."""
    card = provisioned_card(image, tmp_path, ELSEWHERE)
    vm = qemu_vm.Vm(card, root=None, copy=False, append="nutapp.debug=1").start()
    try:
        vm.expect(r"nutapp-status: boot-complete", BOOT_TIMEOUT)
        # (No UPS is attached to the emulated board: upsd lists it, its
        # data stay stale.)
        wait_for(vm, "nutapp upsc -l localhost 2>&1", lambda out: out.strip() == "myups",
                 BOOT_TIMEOUT, "upsd answering on the box")
        assert "nutapp-status: firewall-loaded" in vm.text()
        status, rules = vm.run("nft list ruleset")
        assert "192.168.99.0/24" in rules and "10.0.2.0/24" not in rules, rules
        for _ in range(3):
            assert not ver_answered(vm.port), "a network not allowed reached upsd"
        status, out = vm.run("nft add element inet nutapp allowed_v4 '{ 10.0.2.2 }'")
        assert status == 0, out
        deadline = time.monotonic() + 30
        while not ver_answered(vm.port):
            assert time.monotonic() < deadline, "admitted by hand, still refused"
            time.sleep(1)
    finally:
        vm.stop()


# An access point on wlan1, and a DHCP server on it, with the image's tools.
AP_CONF = """ctrl_interface=/run/wpa-ap
network={
    ssid="%s"
    mode=2
    frequency=2437
    key_mgmt=WPA-PSK
    proto=RSN
    pairwise=CCMP
    group=CCMP
    psk="%s"
}
"""
UDHCPD_CONF = """interface wlan1
start 192.168.77.100
end 192.168.77.150
lease_file /tmp/udhcpd.leases
pidfile /tmp/udhcpd.pid
option subnet 255.255.255.0
option router 192.168.77.1
"""


def write_guest_file(vm, path, text):
    # Typed into the console shell: no tabs (completion), no single quotes.
    assert "\t" not in text and "'" not in text
    status, out = vm.run("printf '%%s' '%s' >%s" % (text, path))
    assert status == 0, out


def start_ap(vm, passphrase):
    write_guest_file(vm, "/tmp/ap.conf", AP_CONF % (SSID, passphrase))
    status, out = vm.run("wpa_supplicant -B -s -D nl80211 -i wlan1 -c /tmp/ap.conf "
                         "-P /tmp/ap.pid")
    assert status == 0, out
    wait_for(vm, "wpa_cli -p /run/wpa-ap -i wlan1 status", lambda out: "wpa_state=COMPLETED"
             in out and "mode=AP" in out, 60, "the access point on wlan1")


def station(vm):
    return vm.run("wpa_cli -p /run/wpa_supplicant -i wlan0 status")[1]


def test_wifi_joins_the_provisioned_network_only(image, tmp_path):  # noqa: F811
    card = provisioned_card(image, tmp_path, WIFI)
    vm = qemu_vm.Vm(card, root=None, copy=False, append="nutapp.debug=1").start()
    try:
        vm.expect(r"debug shell", BOOT_TIMEOUT)
        status, out = vm.run("modprobe mac80211_hwsim radios=2")
        assert status == 0, out
        # mdev starts the provisioned Wi-Fi on wlan0 when it appears, and
        # leaves wlan1 alone.
        vm.expect(r"nutapp-status: network-wifi wlan0", 120)
        status, procs = vm.run("ps")
        assert "-i wlan1" not in procs, procs

        # An access point with the same name and another passphrase: the
        # handshake fails and wlan0 gets no address.
        start_ap(vm, "Wrong-Horse-99")
        wait_for(vm, "wpa_cli -p /run/wpa_supplicant -i wlan0 list_networks",
                 lambda out: "TEMP-DISABLED" in out, 120, "the wrong key refused")
        assert "wpa_state=COMPLETED" not in station(vm)
        status, addr = vm.run("ip -4 addr show dev wlan0")
        assert "inet " not in addr, addr
        status, out = vm.run("kill $(cat /tmp/ap.pid)")

        # The right passphrase, and a DHCP server behind it.
        status, out = vm.run("ip addr add 192.168.77.1/24 dev wlan1")
        start_ap(vm, PASSPHRASE)
        write_guest_file(vm, "/tmp/udhcpd.conf", UDHCPD_CONF)
        # The server stands for the Wi-Fi router, another machine in real
        # life: the appliance's firewall must not stop it hearing wlan0.
        status, out = vm.run('nft insert rule inet nutapp input iifname "wlan1" '
                             'udp dport 67 accept')
        assert status == 0, out
        status, out = vm.run("touch /tmp/udhcpd.leases && udhcpd -S /tmp/udhcpd.conf")
        assert status == 0, out
        wait_for(vm, "wpa_cli -p /run/wpa_supplicant -i wlan0 status",
                 lambda out: "wpa_state=COMPLETED" in out and "ssid=%s" % SSID in out,
                 180, "wlan0 associating")
        addr = wait_for(vm, "ip -4 addr show dev wlan0", lambda out: "inet 192.168.77." in out,
                        120, "a DHCP lease on wlan0")
        assert re.search(r"inet 192\.168\.77\.1[0-4]\d/24", addr), addr
        # The firewall admits the Wi-Fi lease's subnet, as it does Ethernet's.
        wait_for(vm, "nft list ruleset", lambda out: "192.168.77.0/24" in out, 60,
                 "the Wi-Fi subnet in the firewall")
        # The radio follows the provisioned country's rules, from the
        # regulatory database the kernel accepted.
        status, log = vm.run("dmesg | grep regulatory.db")
        assert "direct-loading firmware regulatory.db.p7s" in log and "failed" not in log, log
        status, log = vm.run("logread | grep REGDOM-CHANGE")
        assert "wlan0: CTRL-EVENT-REGDOM-CHANGE init=USER type=COUNTRY alpha2=GB" in log, log

        # wpa_supplicant crashes: the watch loop (within 30 s) starts it
        # again and the station joins again.
        mark = len(vm.output)
        status, out = vm.run("kill -KILL $(cat /run/wpa_supplicant.wlan0.pid)")
        assert status == 0, out
        vm.expect(r"nutapp-status: network-restart wlan0 \(wpa_supplicant had stopped\)",
                  90, start=mark)
        wait_for(vm, "wpa_cli -p /run/wpa_supplicant -i wlan0 status",
                 lambda out: "wpa_state=COMPLETED" in out and "ssid=%s" % SSID in out,
                 120, "wlan0 associating again")

        # The radio goes: what ran for it stops; it comes back: it starts again.
        vm.run("kill $(cat /tmp/ap.pid) $(cat /tmp/udhcpd.pid)")
        wait_for(vm, "ps", lambda out: "-i wlan1" not in out and "udhcpd" not in out, 30,
                 "the access point and the DHCP server stopping")
        # (kill returns before the radio's users let go of it)
        wait_for(vm, "modprobe -r mac80211_hwsim && echo unloaded",
                 lambda out: "unloaded" in out, 30, "mac80211_hwsim unloading")
        wait_for(vm, "ps", lambda out: "-i wlan0" not in out, 60, "wlan0's programs stopping")
        mark = len(vm.output)
        status, out = vm.run("modprobe mac80211_hwsim radios=1")
        assert status == 0, out
        vm.expect(r"nutapp-status: network-wifi wlan0", 120, start=mark)
    finally:
        vm.stop()
