"""The image's network script (overlay/usr/libexec/nutapp/network) on the
build host, under BusyBox's sh, awk and ip as on the appliance.

Addresses are really configured, on a veth pair in a network namespace the
test creates (so these tests need root). The DHCP client, wpa_supplicant
and the firewall are recorders at the edge: each call's words go to a log
(the QEMU tests run the real ones, test_qemu_network.py). The settings are
what `nutapp provision` writes, made by nutapp.provision.system itself.
"""

import ipaddress
import os
import shutil
import subprocess

import pytest

from nutapp.provision import system

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETWORK = os.path.join(ROOT, "overlay", "usr", "libexec", "nutapp", "network")
BUSYBOX = shutil.which("busybox")
HOST_IP = shutil.which("ip")
UNSHARE = shutil.which("unshare")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="configures interfaces in a network namespace"),
    pytest.mark.skipif(None in (BUSYBOX, HOST_IP, UNSHARE),
                       reason="busybox, ip or unshare missing"),
]

# Edge programs: record the call, as the real ones would be called.
RECORDER = """#!%s sh
echo "$(basename "$0") $*" >>"$CALLS"
case "$(basename "$0") $*" in
"nft list table inet nutapp") [ -e "$RUN/firewall" ] || exit 1 ;;
wpa_supplicant*) [ -e "$RUN/wpa-fails" ] && exit 255 ;;
esac
exit 0
"""


class Box:
    """A private network namespace with eth0 (a veth whose peer is eth9),
    a fake /sys/class/net listing, and the settings folder."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.sysfs = tmp_path / "sys"
        self.run_dir = tmp_path / "run"
        self.system = tmp_path / "etc" / "system"
        self.calls = tmp_path / "calls"
        self.console = tmp_path / "console"
        for path in (self.bin, self.sysfs / "class" / "net", self.run_dir, self.system):
            path.mkdir(parents=True)
        for applet in ("sh", "ip", "awk", "cat", "mkdir", "rm", "mv", "cp", "basename",
                       "sleep", "kill"):
            os.symlink(BUSYBOX, self.bin / applet)
        for tool in ("udhcpc", "wpa_supplicant", "nft", "nutapp", "logger"):
            path = self.bin / tool
            path.write_text(RECORDER % BUSYBOX)
            path.chmod(0o755)
        self.calls.write_text("")
        self.add_interface("lo")
        self.add_interface("eth0")

    def add_interface(self, name):
        (self.sysfs / "class" / "net" / name).mkdir()

    def settings(self, ethernet=None, wifi=None, resolv=None):
        """Write system/ as `nutapp provision` does for these settings."""
        wpa = str(self.system / "wpa_supplicant.conf")
        if wifi:
            key = system.wpa_key(wifi["ssid"], wifi["psk"])
            (self.system / "wpa_supplicant.conf").write_text(system.render_wpa(wifi, key))
        (self.system / "interfaces").write_text(
            system.render_interfaces(ethernet, bool(wifi), wpa))
        text = system.render_resolv(ethernet) if ethernet else None
        if text:
            (self.system / "resolv.conf").write_text(text)

    def run(self, script):
        """Run shell `script` under BusyBox sh in a new network namespace
        holding the veth pair, with only the box's programs on PATH;
        $NETWORK is the script under test."""
        # BusyBox ip cannot make a veth pair: the host's iproute2 does that.
        setup = ('"$HOST_IP" link add eth0 type veth peer name eth9 && '
                 '"$HOST_IP" link set eth9 up && exec "$BUSYBOX" sh -c "$0"')
        env = {
            "PATH": str(self.bin), "SYSFS": str(self.sysfs), "RUN": str(self.run_dir),
            "NUTAPP_SYSTEM": str(self.system), "CONSOLE": str(self.console),
            "CALLS": str(self.calls), "NETWORK": NETWORK, "BUSYBOX": BUSYBOX,
            "HOST_IP": HOST_IP,
        }
        return subprocess.run([UNSHARE, "--net", BUSYBOX, "sh", "-c", setup, script],
                              env=env, capture_output=True, text=True, timeout=60)

    def call_lines(self):
        return [line for line in self.calls.read_text().splitlines() if line]

    def status(self):
        return self.console.read_text() if self.console.exists() else ""


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def start(box, after=""):
    """`network start` in a fresh namespace; then `after`; return the
    addresses and routes the namespace ended with, and the result."""
    script = ('"$NETWORK" start; %s; echo "==addr"; ip addr show dev eth0; '
              'echo "==route"; ip -4 route show; ip -6 route show' % (after or ":"))
    result = box.run(script)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_static_ipv4_address_route_and_name_servers(box):
    box.settings(ethernet={"mode": "static", "address": ipaddress.ip_interface("10.0.2.20/24"),
                           "gateway": ipaddress.ip_address("10.0.2.2"),
                           "dns": [ipaddress.ip_address("10.0.2.3")]})
    out = start(box)
    assert "inet 10.0.2.20/24" in out, out
    assert "default via 10.0.2.2 dev eth0" in out, out
    assert (box.run_dir / "net" / "resolv.conf").read_text() == "nameserver 10.0.2.3\n"
    assert not [c for c in box.call_lines() if c.startswith("udhcpc")], box.call_lines()
    assert "nutapp-status: network-static eth0 10.0.2.20/24 via 10.0.2.2" in box.status()


def test_static_address_joins_a_loaded_firewall_local_networks(box):
    box.settings(ethernet={"mode": "static", "address": ipaddress.ip_interface("10.0.2.20/24"),
                           "gateway": None, "dns": []})
    (box.run_dir / "firewall").write_text("")
    start(box)
    assert "nutapp provision --local-subnet 10.0.2.20/24" in box.call_lines()
    assert not (box.run_dir / "net" / "resolv.conf").exists()


def test_static_ipv6(box):
    box.settings(ethernet={"mode": "static", "address": ipaddress.ip_interface("fd00:1::20/64"),
                           "gateway": ipaddress.ip_address("fd00:1::1"), "dns": []})
    out = start(box)
    assert "inet6 fd00:1::20/64" in out, out
    assert "default via fd00:1::1 dev eth0" in out, out
    assert not [c for c in box.call_lines() if c.startswith("udhcpc")]


def test_dhcp_as_provisioned(box):
    box.settings(ethernet={"mode": "dhcp"})
    out = start(box)
    dhcp = [c for c in box.call_lines() if c.startswith("udhcpc")]
    assert len(dhcp) == 1 and " -i eth0 " in dhcp[0] and " -b " in dhcp[0], dhcp
    assert "inet " not in out.split("==route")[0]
    assert "nutapp-status: network-dhcp eth0\n" in box.status()


def test_no_settings_fall_back_to_dhcp_with_a_status_line(box):
    start(box)
    assert [c for c in box.call_lines() if c.startswith("udhcpc") and " -i eth0 " in c]
    assert "network-dhcp eth0 (using DHCP: no provisioned network settings)" in box.status()


@pytest.mark.parametrize("stanza", [
    "iface eth0 inet static\n\tnetmask 255.255.255.0\n",  # no address
    "iface eth0 inet static\n\taddress 10.0.2.300\n\tnetmask 255.255.255.0\n",
    "iface eth0 inet static\n\taddress 10.0.2.20\n\tnetmask 255.0.255.0\n",
    "iface eth0 inet static\n\taddress 10.0.2.20\n\tnetmask 24\n\tgateway 10.0.3.x\n",
    "iface eth0 inet static\n\taddress $(touch${IFS}/tmp/nutapp-pwned)\n\tnetmask 24\n",
    "iface eth0 inet6 static\n\taddress 10.0.2.20\n\tnetmask 64\n",
    "iface eth0 inet ppp\n",
])
def test_unusable_settings_fall_back_to_dhcp(box, stanza):
    (box.system / "interfaces").write_text(
        "auto lo\niface lo inet loopback\n\nauto eth0\n" + stanza)
    out = start(box)
    assert "inet 10.0.2.20" not in out
    assert [c for c in box.call_lines() if c.startswith("udhcpc") and " -i eth0 " in c]
    assert "network-dhcp eth0 (using DHCP:" in box.status(), box.status()
    assert not os.path.exists("/tmp/nutapp-pwned")


def test_a_gateway_the_kernel_refuses_falls_back_to_dhcp(box):
    # Valid words, but the gateway is not reachable from the address's
    # network: `ip route` fails, the address is removed again.
    (box.system / "interfaces").write_text(
        "auto eth0\niface eth0 inet static\n\taddress 10.0.2.20\n\tnetmask 255.255.255.255\n"
        "\tgateway 192.0.2.1\n")
    out = start(box)
    assert "10.0.2.20" not in out.split("==route")[0], out
    assert "network-dhcp eth0 (using DHCP: the static address settings cannot be used)" in (
        box.status())


def test_ethernet_off_with_wifi_leaves_ethernet_alone(box):
    box.settings(ethernet={"mode": "off"}, wifi={"ssid": "Home", "psk": "correct horse",
                                                 "country": "GB"})
    start(box)
    assert not [c for c in box.call_lines() if c.startswith("udhcpc")]
    assert "network-off eth0" in box.status()


def test_ethernet_off_without_wifi_still_asks_for_a_lease(box):
    box.settings(ethernet={"mode": "off"})
    start(box)
    assert [c for c in box.call_lines() if c.startswith("udhcpc") and " -i eth0 " in c]
    assert "neither Ethernet nor Wi-Fi" in box.status()


WIFI = {"ssid": "Home", "psk": "correct horse", "country": "GB"}


def wifi_calls(box, iface):
    return [c for c in box.call_lines()
            if c.split()[0] in ("wpa_supplicant", "udhcpc") and " -i %s " % iface in c + " "]


def test_wifi_present_at_boot(box):
    box.settings(ethernet={"mode": "dhcp"}, wifi=WIFI)
    box.add_interface("wlan0")
    box.add_interface("wlan1")
    start(box)
    calls = wifi_calls(box, "wlan0")
    assert len(calls) == 2, box.call_lines()
    wpa = calls[0].split()
    assert wpa[0] == "wpa_supplicant" and wpa[wpa.index("-c") + 1] == str(
        box.system / "wpa_supplicant.conf") and "nl80211" in wpa, wpa
    assert calls[1].startswith("udhcpc ") and " -b " in calls[1]
    assert not wifi_calls(box, "wlan1"), "a radio that was not provisioned was used"
    assert "network-wifi wlan0" in box.status()


def hotplug(action, iface):
    return 'ACTION=%s MDEV=%s "$NETWORK" hotplug' % (action, iface)


def test_wifi_that_appears_later_starts_once_and_again_after_it_went(box):
    box.settings(ethernet={"mode": "dhcp"}, wifi=WIFI)
    # Before the boot set the network up (mdev's first scan): nothing.
    box.run(hotplug("add", "wlan0"))
    assert not wifi_calls(box, "wlan0")
    out = start(box, after="; ".join([
        hotplug("add", "wlan0"), hotplug("add", "wlan0"),  # boot and mdev both see it
        # The supplicant that ran for it is stopped when it goes.
        "sleep 300 & echo $! >$RUN/wpa_supplicant.wlan0.pid", hotplug("remove", "wlan0"),
        "wait $!; echo supplicant-exit=$?", hotplug("add", "wlan0")]))
    assert "supplicant-exit=143" in out, out
    calls = wifi_calls(box, "wlan0")
    assert [c.split()[0] for c in calls] == ["wpa_supplicant", "udhcpc"] * 2, calls


def test_wifi_not_provisioned_stays_off(box):
    box.settings(ethernet={"mode": "dhcp"})
    start(box, after=hotplug("add", "wlan0"))
    assert not wifi_calls(box, "wlan0")
    assert "wifi" not in box.status()


def test_wpa_supplicant_failing_is_reported_and_retried_on_the_next_event(box):
    box.settings(ethernet={"mode": "dhcp"}, wifi=WIFI)
    (box.run_dir / "wpa-fails").write_text("")
    start(box, after="%s; rm $RUN/wpa-fails; %s" % (hotplug("add", "wlan0"),
                                                    hotplug("add", "wlan0")))
    assert [c.split()[0] for c in wifi_calls(box, "wlan0")] == [
        "wpa_supplicant", "wpa_supplicant", "udhcpc"], box.call_lines()
    assert "network-wifi-failed wlan0" in box.status()


def test_usb_ethernet_that_appears_later_gets_the_ethernet_settings(box):
    (box.sysfs / "class" / "net" / "eth0").rmdir()
    box.settings(ethernet={"mode": "static", "address": ipaddress.ip_interface("10.0.2.20/24"),
                           "gateway": None, "dns": []})
    out = start(box, after=hotplug("add", "eth0") + "; " + hotplug("add", "eth1"))
    assert "network-waiting" in box.status()
    assert "inet 10.0.2.20/24" in out, out
    assert "network-static eth0 10.0.2.20/24" in box.status()
    assert "eth1" not in box.status()


def test_hotplug_ignores_odd_names(box):
    box.settings(ethernet={"mode": "dhcp"}, wifi=WIFI)
    start(box, after=hotplug("add", "'wlan0;touch /tmp/nutapp-pwned'"))
    assert not os.path.exists("/tmp/nutapp-pwned")


# A daemon's pid file as the real one leaves it: a live process (its pid
# also kept in $live, for the end of the script), or one that has died (its
# number no longer in use), or no file at all.
LIVE = 'sleep 300 >/dev/null 2>&1 & echo $! >$RUN/%s.pid; live="$live $!"'
DEAD = "sleep 0 & p=$!; wait $p; echo $p >$RUN/%s.pid"
END = "kill $live 2>/dev/null; true"


def calls_after(box, mark):
    """The daemons started after the line `mark` was logged."""
    lines = box.call_lines()
    return [c for c in lines[lines.index(mark) + 1:]
            if c.split()[0] in ("wpa_supplicant", "udhcpc")]


def test_check_starts_again_the_daemons_that_died(box):
    box.settings(ethernet={"mode": "dhcp"}, wifi=WIFI)
    box.add_interface("wlan0")
    start(box, after="; ".join([
        LIVE % "wpa_supplicant.wlan0", "wpa=$!",
        DEAD % "udhcpc.wlan0",
        "rm -f $RUN/udhcpc.eth0.pid",  # udhcpc removes it when it exits
        "echo mark1 >>$CALLS", '"$NETWORK" check',
        # Now the supplicant dies too; it gets the configuration it had.
        "kill $wpa; wait $wpa", LIVE % "udhcpc.wlan0", LIVE % "udhcpc.eth0",
        "echo mark2 >>$CALLS", '"$NETWORK" check', END]))
    first = calls_after(box, "mark1")[:2]
    assert sorted(c.split()[0] + " " + c.split()[c.split().index("-i") + 1] for c in first) == [
        "udhcpc eth0", "udhcpc wlan0"], box.call_lines()
    second = calls_after(box, "mark2")
    assert len(second) == 1 and second[0].startswith("wpa_supplicant "), box.call_lines()
    wpa = second[0].split()
    assert wpa[wpa.index("-c") + 1] == str(box.system / "wpa_supplicant.conf")
    assert wpa[wpa.index("-i") + 1] == "wlan0"
    assert "network-restart wlan0 (wpa_supplicant had stopped)" in box.status()
    assert "network-restart eth0 (the DHCP client had stopped)" in box.status()


def test_check_leaves_alone_what_went_was_stopped_or_has_no_daemon(box):
    box.settings(ethernet={"mode": "static", "address": ipaddress.ip_interface("10.0.2.20/24"),
                           "gateway": None, "dns": []}, wifi=WIFI)
    box.add_interface("wlan0")
    box.add_interface("wlan1")
    start(box, after="; ".join([
        LIVE % "wpa_supplicant.wlan0", LIVE % "udhcpc.wlan0",
        "echo mark1 >>$CALLS",
        '"$NETWORK" check',  # a static address runs no daemon; wlan0's are running
        hotplug("remove", "wlan0"), "rmdir $SYSFS/class/net/wlan0",
        '"$NETWORK" check',  # gone: nothing to start again
        hotplug("add", "wlan1"), '"$NETWORK" stop', '"$NETWORK" check', END]))
    assert calls_after(box, "mark1") == [], box.call_lines()
    assert "network-restart" not in box.status()


def test_watch_loop_checks_on_its_own(box):
    box.settings(ethernet={"mode": "dhcp"})
    start(box, after="; ".join([
        "rm -f $RUN/udhcpc.eth0.pid", "echo mark1 >>$CALLS",
        'WATCH_INTERVAL=0.2 "$NETWORK" watch & w=$!', "sleep 1", "kill $w"]))
    again = calls_after(box, "mark1")
    assert again and all(c.startswith("udhcpc ") and "-i eth0" in c for c in again), again
