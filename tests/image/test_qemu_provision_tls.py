"""From a blank card to a TLS-verified remote upsmon, by editing the boot
partition only.

A settings file with a UPS and a secondary upsmon user is put into the
image's FAT partition with mtools; the appliance boots in QEMU, provisions
it, and leaves its made certificate on the card. Debian's NSS-built upsmon
2.8.0, trusting only that certificate, logs in through the forwarded port
over STARTTLS with CERTVERIFY 1 and FORCESSL 1; the password is no longer
on the card; the provisioned firewall is loaded and the host is announced
by mDNS.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import qemu_vm
from test_qemu_boot import BOOT_TIMEOUT, image  # noqa: F401  (the image fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="building the image needs root"),
]

PASSWORD = "Watch-4-Power-Cuts"
SETTINGS = """[system]
hostname = pi-nut
allow = local

[ethernet]
mode = dhcp

[ups myups]
driver = auto

[user monitor]
role = secondary
password = %s
""" % PASSWORD


def mtools(*argv, **kw):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, env=env,
                          **kw)


def test_debian_upsmon_verifies_the_provisioned_appliance(image, tmp_path):  # noqa: F811
    for tool in ("certutil", "/lib/nut/upsmon", "unshare"):
        assert shutil.which(tool) or os.path.exists(tool), "%s missing" % tool
    card = str(tmp_path / "card.img")
    shutil.copyfile(image, card)
    fat = "%s@@%d" % (card, qemu_vm.BOOT_PARTITION_OFFSET)
    settings = tmp_path / "nutapp.conf"
    settings.write_text(SETTINGS)
    mtools("mmd", "-i", fat, "::/nut")
    mtools("mcopy", "-i", fat, str(settings), "::/nut/nutapp.conf")

    vm = qemu_vm.Vm(card, root=None, copy=False, append="nutapp.debug=1").start()
    top = tempfile.mkdtemp(prefix="nutapp-qemu-mon-", dir="/tmp")
    mon_proc = None
    try:
        vm.expect(r"nutapp-status: boot-complete", BOOT_TIMEOUT)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while qemu_vm.nut_list_ups(vm.port) != ["myups"]:
            assert time.monotonic() < deadline, "upsd never served myups:\n" + vm.text()
            time.sleep(0.5)

        # What the person finds on the card afterwards.
        listing = mtools("mdir", "-b", "-i", fat, "::/nut").stdout
        assert "SERVER-CERTIFICATE.pem" in listing, listing
        cert = str(tmp_path / "server.pem")
        mtools("mcopy", "-o", "-i", fat, "::/nut/SERVER-CERTIFICATE.pem", cert)
        left = str(tmp_path / "left.conf")
        mtools("mcopy", "-o", "-i", fat, "::/nut/nutapp.conf", left)
        assert PASSWORD not in open(left).read(), "the password stayed on the card"

        # A remote upsmon that trusts only that certificate.
        db = os.path.join(top, "nssdb")
        os.makedirs(db)
        subprocess.run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"], check=True)
        subprocess.run(["certutil", "-A", "-d", "sql:" + db, "-n", "pi-nut", "-t", "TC,,",
                        "-a", "-i", cert], check=True)
        conf = os.path.join(top, "upsmon.conf")
        with open(conf, "w") as f:
            f.write("MONITOR myups@127.0.0.1:%d 1 monitor %s secondary\n"
                    "CERTPATH %s\nCERTVERIFY 1\nFORCESSL 1\n"
                    'CERTHOST "127.0.0.1" "pi-nut.local" 1 1\n'
                    "POLLFREQ 2\nMINSUPPLIES 1\nSHUTDOWNCMD /bin/false\nRUN_AS_USER root\n"
                    % (vm.port, PASSWORD, db))
        os.chmod(conf, 0o600)
        with open(os.path.join(top, "nut.conf"), "w") as f:
            f.write("MODE=netclient\n")
        log = open(os.path.join(top, "upsmon.log"), "wb")
        mon_proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mkdir -p /run/nut && mount -t tmpfs tmpfs /run/nut && "
             "exec /lib/nut/upsmon -F -D"],
            env=dict(os.environ, NUT_CONFPATH=top, NUT_STATEPATH=top),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        # The appliance's own log says who logged in, and how.
        deadline = time.monotonic() + 120
        seen = ""
        while time.monotonic() < deadline:
            status, seen = vm.run("logread | grep 'logged into UPS' || true", timeout=60)
            if "monitor@" in seen:
                break
            time.sleep(2)
        upsmon_log = open(os.path.join(top, "upsmon.log"), errors="replace").read()
        assert "monitor@" in seen and "(TLS)" in seen, (seen, upsmon_log[-3000:])

        # The provisioned firewall is loaded (and let that login through from
        # the local subnet), and the host is announced by mDNS.
        assert "nutapp-status: firewall-loaded" in vm.text(), vm.text()[-3000:]
        status, rules = vm.run("nft list ruleset", timeout=60)
        assert status == 0 and "3493" in rules and "policy drop" in rules, rules
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, announced = vm.run("logread | grep 'answering for' || true", timeout=60)
            if "pi-nut.local" in announced:
                break
            time.sleep(2)
        assert "pi-nut.local" in announced and "_nut._tcp" in announced, announced
    finally:
        if mon_proc is not None and mon_proc.poll() is None:
            os.killpg(mon_proc.pid, signal.SIGTERM)
            try:
                mon_proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(mon_proc.pid, signal.SIGKILL)
        vm.stop()
        shutil.rmtree(top, ignore_errors=True)
