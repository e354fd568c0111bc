"""The appliance as a client on its network sees it: provisioned with a
static address and no `allow` setting, the firewall admits the local
subnet only, and a client that pins SERVER-CERTIFICATE.pem from the boot
folder reads the UPS over TLS by the appliance's address. All inside two
network namespaces (upsd there listens on every address of its own
namespace, never on the host's)."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from nutstack import APC_DUMP

from provision_helpers import Box

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("nft"), reason="nftables not installed")]

# What the APC dump in tests/data serves.
STATUS = 'VAR dummy ups.status "OL DISCHRG"'

CLIENT = textwrap.dedent("""
    import socket, ssl, sys
    source, server, name, cafile = sys.argv[1:5]
    raw = socket.socket()
    raw.bind((source, 0))
    try:
        raw.connect((server, 3493))
    except ConnectionRefusedError:
        print("refused")
        sys.exit(0)
    raw.sendall(b"STARTTLS\\n")
    assert raw.recv(100) == b"OK STARTTLS\\n"
    ctx = ssl.create_default_context(cafile=cafile)
    with ctx.wrap_socket(raw, server_hostname=name) as conn:
        for _ in range(50):
            conn.sendall(b"GET VAR dummy ups.status\\n")
            line = conn.recv(200).decode().strip()
            if line.startswith("VAR"):
                break
            import time; time.sleep(0.2)
        print(line)
""")


@pytest.fixture
def appliance_dir():
    top = tempfile.mkdtemp(prefix="nutapp-appliance-", dir="/tmp")
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def test_local_subnet_reads_over_tls(netns, appliance_dir):
    box = Box(appliance_dir)
    dev = os.path.join(appliance_dir, "ups.dev")
    shutil.copy(APC_DUMP, dev)
    os.chmod(dev, 0o644)
    box.put("nutapp.conf", "[system]\nhostname = pi-nut\n\n"
                           "[ethernet]\nmode = static\naddress = 10.88.0.1/24\n\n"
                           "[ups dummy]\ndriver = dummy-ups\nport = %s\n" % dev)
    assert box.run() == 0

    for cidr in ("10.88.0.1/24", "10.89.0.1/24"):
        netns.addr(netns.a, cidr)
    for cidr in ("10.88.0.2/24", "10.89.0.2/24"):
        netns.addr(netns.b, cidr)
    netns.run(netns.a, "nft", "-f", os.path.join(box.etc, "system", "nftables.conf"),
              check=True)
    env = dict(os.environ, NUT_CONFPATH=os.path.abspath(box.etc),
               NUT_STATEPATH=os.path.join(box.data, "nut", "state"))
    procs = [netns.popen(netns.a, sys.executable, "-m", "nutapp", tool, *args, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for tool, args in (("dummy-ups", ("-a", "dummy", "-F")), ("upsd", ("-F",)))]
    try:
        cafile = os.path.join(box.boot, "SERVER-CERTIFICATE.pem")

        def client(source, server, name):
            out = netns.run(netns.b, sys.executable, "-c", CLIENT, source, server, name,
                            cafile, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()

        for _ in range(100):  # until upsd listens
            if client("10.88.0.2", "10.88.0.1", "10.88.0.1") != "refused":
                break
            time.sleep(0.1)
        assert client("10.88.0.2", "10.88.0.1", "10.88.0.1") == STATUS
        assert client("10.88.0.2", "10.88.0.1", "pi-nut.local") == STATUS
        # Not the local subnet: reset by the firewall.
        assert client("10.89.0.2", "10.89.0.1", "10.89.0.1") == "refused"
    finally:
        for p in procs:
            p.terminate()
            p.wait()
