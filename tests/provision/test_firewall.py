"""The generated nftables ruleset: nft accepts it, and loaded in a network
namespace it lets the allowed networks reach port 3493 and resets others."""

import ipaddress
import shutil
import subprocess
import sys
import textwrap

import pytest

from nutapp.provision import firewall

needs_nft = pytest.mark.skipif(not shutil.which("nft"), reason="nftables not installed")

net = ipaddress.ip_network


def nft_check(ruleset, tmp_path, netns=None):
    path = tmp_path / "rules.nft"
    path.write_text(ruleset)
    cmd = ["nft", "-c", "-f", str(path)]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns] + cmd
    return subprocess.run(cmd, capture_output=True, text=True)


@needs_nft
@pytest.mark.parametrize("allowed, ssh, local4, local6", [
    ([], False, [], []),
    ([], True, [net("192.168.1.0/24")], []),
    ([net("10.0.0.0/8"), net("fd00::/8")], True, [], []),
    ([net("192.0.2.7/32")], False, [], []),
    ([net("2001:db8::/32")], False, [], [net("2001:db8:1::/64")]),
])
def test_nft_accepts_the_ruleset(tmp_path, allowed, ssh, local4, local6):
    result = nft_check(firewall.ruleset(allowed, ssh, local4, local6), tmp_path)
    assert result.returncode == 0, result.stderr


@needs_nft
def test_nft_check_can_fail(tmp_path):
    # The check above means something: a broken ruleset is refused.
    broken = firewall.ruleset([net("10.0.0.0/8")]).replace("ipv4_addr", "ipv5_addr")
    assert nft_check(broken, tmp_path).returncode != 0


def test_ports_and_networks_in_the_text():
    text = firewall.ruleset([net("192.168.5.0/24")], ssh=False)
    assert "tcp dport { 3493 } ip saddr @allowed_v4 accept" in text
    assert "elements = { 192.168.5.0/24 }" in text
    assert "local_v4" not in text  # networks given: no run-time local rule
    assert "policy drop" in text
    text = firewall.ruleset([], ssh=True, local_v4=[net("192.168.5.0/24")])
    assert "tcp dport { 3493, 22 }" in text and "set local_v4" in text


def test_dhcp_hook_command():
    assert firewall.local_subnet_commands("192.168.1.37/24") == [
        "nft", "add", "element", "inet", "nutapp", "local_v4", "{ 192.168.1.0/24 }"]
    assert firewall.local_subnet_commands("fd00:1::5/64")[5:] == [
        "local_v6", "{ fd00:1::/64 }"]


SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(sys.argv[1])))
    s.listen(8)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.sendall(b"hello\\n")
        c.close()
""")

CLIENT = textwrap.dedent("""
    import socket, sys
    source, dest, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in dest else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((source, 0))
    try:
        s.connect((dest, port))
        print(s.recv(10).decode().strip())
    except ConnectionRefusedError:
        print("refused")
""")


def connect(netns, source, dest, port):
    out = netns.run(netns.b, sys.executable, "-c", CLIENT, source, dest, str(port),
                    capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@needs_nft
@pytest.mark.root
def test_loaded_in_a_namespace(netns, tmp_path):
    # Server side A: 10.77.0.1/24 and 10.78.0.1/24, fd77::1/64; client side
    # B has one address in each. Only 10.77.0.0/24 and fd77::/64 are allowed.
    for cidr in ("10.77.0.1/24", "10.78.0.1/24", "fd77::1/64"):
        netns.addr(netns.a, cidr)
    for cidr in ("10.77.0.2/24", "10.78.0.2/24", "fd77::2/64"):
        netns.addr(netns.b, cidr)
    rules = tmp_path / "rules.nft"
    rules.write_text(firewall.ruleset([net("10.77.0.0/24"), net("fd77::/64")], ssh=False))
    netns.run(netns.a, "nft", "-f", str(rules), check=True)

    server = netns.popen(netns.a, sys.executable, "-c", SERVER, "3493",
                         stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        assert connect(netns, "10.77.0.2", "10.77.0.1", 3493) == "hello"
        assert connect(netns, "fd77::2", "fd77::1", 3493) == "hello"
        # The same listener, from a network that is not allowed: reset.
        assert connect(netns, "10.78.0.2", "10.78.0.1", 3493) == "refused"
        # Without the firewall the refused address does get through, so the
        # refusal above is the firewall's doing.
        netns.run(netns.a, "nft", "delete", "table", "inet", "nutapp", check=True)
        assert connect(netns, "10.78.0.2", "10.78.0.1", 3493) == "hello"
    finally:
        server.kill()
        server.wait()


@needs_nft
@pytest.mark.root
def test_dhcp_local_subnet_at_run_time(netns, tmp_path):
    netns.addr(netns.a, "10.79.0.1/24")
    netns.addr(netns.b, "10.79.0.2/24")
    rules = tmp_path / "rules.nft"
    rules.write_text(firewall.ruleset([], ssh=False))
    netns.run(netns.a, "nft", "-f", str(rules), check=True)
    server = netns.popen(netns.a, sys.executable, "-c", SERVER, "3493",
                         stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        assert connect(netns, "10.79.0.2", "10.79.0.1", 3493) == "refused"
        # What the DHCP client's hook runs once it has a lease:
        netns.run(netns.a, sys.executable, "-m", "nutapp", "provision", "--local-subnet",
                  "10.79.0.1/24", check=True)
        assert connect(netns, "10.79.0.2", "10.79.0.1", 3493) == "hello"
    finally:
        server.kill()
        server.wait()
