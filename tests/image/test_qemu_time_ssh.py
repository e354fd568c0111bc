"""Time servers and SSH keys from the boot partition, in one boot.

The card gets a settings file naming a time server at 10.0.2.2:<port>
(QEMU's user network takes the guest there to the host's 127.0.0.1, where
this test serves a time 1000 days ahead of the real one, so the guest
cannot have found it anywhere else) and an authorized_keys file with an
ed25519 key made here. The guest boots with its clock in 2001. It must end
up at the served time, save it on the data partition when the time service
stops (as at shutdown), and let this test in
over SSH with that key, checked against the host key fingerprint it left on
the card; a password login is not even offered, and another key is
refused. The next boot restores the saved time, keeps the host key, and
writes nothing to the card.
"""

import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import qemu_vm
from test_qemu_boot import BOOT_TIMEOUT, image, sha256  # noqa: F401  (image fixture)
from test_qemu_provision_tls import mtools

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root"),
]

SHIFT = 1000 * 86400  # the served time's distance from the real one
NTP_TO_UNIX = 2208988800
DUMP = "/usr/share/nutapp/default-nut/eaton-5e1100i.dev"  # in the image
SETTINGS = """[system]
hostname = pi-nut
allow = local
time_servers = 10.0.2.2:%d

[ups myups]
driver = dummy-ups
port = %s
"""


class TimeServer:
    """SNTP on 127.0.0.1: stratum 2, the real time plus SHIFT."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.served = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                request, peer = self.sock.recvfrom(1024)
            except OSError:
                return
            if len(request) < 48 or request[0] & 7 != 3:
                continue
            now = stamp(time.time() + SHIFT)
            head = struct.pack("!BBbbII4s", (4 << 3) | 4, 2, 6, -20, 0, 0, b"TEST")
            self.sock.sendto(head + now + request[40:48] + now + now, peer)
            self.served += 1

    def close(self):
        self.sock.close()


def stamp(t):
    seconds = int(t)
    return struct.pack("!II", seconds + NTP_TO_UNIX, int((t - seconds) * 2 ** 32))


def ssh(port, key, known_hosts, command, *options):
    argv = ["ssh", "-p", str(port), "-i", key, "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + known_hosts, "-o", "ConnectTimeout=60",
            "-F", "/dev/null"] + list(options) + ["root@127.0.0.1", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180)


def test_time_from_the_provisioned_server_and_ssh_with_the_provisioned_key(
        image, tmp_path):  # noqa: F811
    for tool in ("ssh", "ssh-keygen", "upsc"):
        assert shutil.which(tool), "%s missing (tests/image/apt-packages.txt)" % tool
    key, other = str(tmp_path / "id_ed25519"), str(tmp_path / "other")
    for path in (key, other):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test",
                        "-f", path], check=True)
    server = TimeServer()

    card = str(tmp_path / "card.img")
    shutil.copyfile(image, card)
    fat = "%s@@%d" % (card, qemu_vm.BOOT_PARTITION_OFFSET)
    (tmp_path / "nutapp.conf").write_text(SETTINGS % (server.port, DUMP))
    mtools("mmd", "-i", fat, "::/nut")
    mtools("mcopy", "-i", fat, str(tmp_path / "nutapp.conf"), "::/nut/nutapp.conf")
    mtools("mcopy", "-i", fat, key + ".pub", "::/nut/authorized_keys")

    vm, ssh_port = start(card)
    try:
        vm.expect(r"nutapp-status: boot-complete", BOOT_TIMEOUT)
        assert "nutapp-status: ssh-started" in vm.text(), vm.text()[-3000:]

        # The clock: moved forward from 2001 at boot, then to the served time.
        deadline = time.monotonic() + 180
        while True:
            status, out = vm.run("date +%s", timeout=60)
            guest = int(out.strip().splitlines()[-1])
            if abs(guest - (time.time() + SHIFT)) < 120:
                break
            assert time.monotonic() < deadline, (
                "guest clock %d, served %d (asked %d times); log:\n%s" % (
                    guest, time.time() + SHIFT, server.served,
                    vm.run("logread | grep timesync")[1]))
            time.sleep(3)
        status, log = vm.run("logread | grep timesync")
        assert "clock restored to" in log and "from 10.0.2.2:%d" % server.port in log, log
        # The service saves the time on the data partition as it stops, and
        # leaves the partition read-only again.
        status, saved = vm.run("/etc/init.d/S56timesync stop; cat /data/clock; "
                               "grep ' /data ' /proc/mounts")
        lines = saved.strip().splitlines()
        assert abs(int(lines[0]) - (time.time() + SHIFT)) < 300, saved
        assert " ro," in lines[-1], saved

        # The host key's fingerprint and public key, left on the card.
        note = str(tmp_path / "hostkeys.txt")
        mtools("mcopy", "-o", "-i", fat, "::/nut/SSH-HOST-KEYS.txt", note)
        text = open(note, newline="").read()
        host_key = re.search(r"^HOST (ssh-ed25519 \S+)\r$", text, re.M).group(1)
        shown = re.search(r"fingerprint is (SHA256:\S+)\r$", text, re.M).group(1)
        (tmp_path / "host.pub").write_text(host_key + "\n")
        listed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                                 str(tmp_path / "host.pub")],
                                check=True, capture_output=True, text=True).stdout
        assert listed.split()[1] == shown
        known = str(tmp_path / "known_hosts")
        with open(known, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (ssh_port, host_key))

        # In with the provisioned key, host key checked; the UPS as upsd
        # serves it to the host's own upsc.
        assert qemu_vm.wait_serving(vm.port, "myups", BOOT_TIMEOUT) is not None, vm.text()
        done = ssh(ssh_port, key, known, "nutapp upsc myups@localhost ups.status")
        assert done.returncode == 0, done.stderr
        direct = subprocess.run(["upsc", "myups@127.0.0.1:%d" % vm.port, "ups.status"],
                                capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() and done.stdout == direct.stdout, (done, direct)

        # Another key: refused. Passwords: not even offered.
        refused = ssh(ssh_port, other, known, "true")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused
        password = ssh(ssh_port, other, known, "true", "-v", "-o",
                       "PreferredAuthentications=password,keyboard-interactive")
        offered = re.findall(r"Authentications that can continue: (\S+)", password.stderr)
        assert password.returncode == 255 and offered == ["publickey"], password.stderr

        # A host key other than the one on the card: ssh refuses the server.
        with open(known, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (ssh_port, " ".join(
                open(other + ".pub").read().split()[:2])))
        spoofed = ssh(ssh_port, key, known, "true")
        assert spoofed.returncode == 255 and "Host key verification failed" in (
            spoofed.stderr), spoofed.stderr
        vm.stop()

        # The next boot: the saved time restored, the same host key, and
        # nothing written to the card.
        written = sha256(card)
        vm, ssh_port = start(card)
        vm.expect(r"nutapp-status: boot-complete", BOOT_TIMEOUT)
        assert "nutapp-status: ssh-started" in vm.text(), vm.text()[-3000:]
        status, log = vm.run("logread | grep timesync")
        restored = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(lines[0])))
        assert "clock restored to %s" % restored in log, log
        with open(known, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (ssh_port, host_key))
        again = ssh(ssh_port, key, known, "cat /data/clock")
        assert again.returncode == 0 and again.stdout == lines[0] + "\n", again
        vm.stop()
        assert sha256(card) == written, "the second boot wrote to the card"
    finally:
        vm.stop()
        server.close()


def start(card):
    """Boot the card in place, its clock in 2001, with SSH forwarded; return
    the machine and the host port that reaches its port 22."""
    vm = qemu_vm.Vm(card, root=None, copy=False, append="nutapp.debug=1")
    ssh_port = vm.forward(22)
    vm.qemu_args += ["-rtc", "base=2001-01-01T00:00:00"]
    return vm.start(), ssh_port
