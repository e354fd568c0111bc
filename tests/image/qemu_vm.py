"""Boot a nutapp image under qemu-system-aarch64 and talk to its console.

The image's own kernel and initramfs are copied out of its FAT partition
(mtools, no mounting), so what boots is what a Pi would boot. The guest's
NUT port 3493 is forwarded to a free port on 127.0.0.1 only, and the serial
console is the QEMU process's stdin/stdout: `expect` waits for console
output, `run` runs a shell command when the image was booted with
nutapp.debug=1 (which gives a shell on the console) and returns its output
and exit status.

Used by tests/image/test_qemu_boot.py and bench/image/bench_image.py.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QEMU = "qemu-system-aarch64"
BOOT_PARTITION_OFFSET = 4 * 1024 * 1024  # board/common/genimage.cfg: align = 4M


def extract_boot_files(image, dest, names=("vmlinuz", "initrd.img")):
    """Copy files out of the image's FAT partition; return their paths."""
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    paths = []
    for name in names:
        path = os.path.join(dest, name)
        subprocess.run(
            ["mcopy", "-o", "-i", "%s@@%d" % (image, BOOT_PARTITION_OFFSET), "::/" + name, path],
            check=True, env=env, stdout=subprocess.DEVNULL)
        paths.append(path)
    return paths


class Vm:
    """One QEMU virt machine booting a copy of `image`."""

    def __init__(self, image, append="", memory=512, cpus=2, port=None, root="/dev/vda2",
                 copy=True, guest=""):
        """Boot a copy of `image`, or with copy=False the image file itself
        (what the guest writes stays, as on an SD card). The NUT port is
        forwarded to the guest's address `guest`, by default the one QEMU's
        DHCP server gives (10.0.2.15)."""
        self.tmp = tempfile.mkdtemp(prefix="nutapp-qemu-")
        self.disk = os.path.join(self.tmp, "sd.img") if copy else image
        if copy:
            shutil.copyfile(image, self.disk)
        self.kernel, self.initrd = extract_boot_files(image, self.tmp)
        self.port = port or free_port()
        self.guest = guest
        # Without root= the initramfs finds the root as a Pi does: partition 2
        # of the disk whose partition 1 is labelled NUTBOOT.
        self.append = " ".join(["console=ttyAMA0"] + (["root=" + root] if root else [])
                               + ["rootfstype=squashfs ro quiet", append]).strip()
        self.memory = memory
        self.cpus = cpus
        self.output = bytearray()
        self.lock = threading.Condition()
        self.proc = None
        self.started = None
        self.forwards = []  # (host port, guest port): TCP forwards besides NUT's
        self.qemu_args = []  # more QEMU options, e.g. ["-rtc", "base=2001-01-01"]

    def forward(self, guest_port, host_port=None):
        """Forward 127.0.0.1:<host port> to the guest's TCP `guest_port` too
        (call before start); return the host port."""
        host_port = host_port or free_port()
        self.forwards.append((host_port, guest_port))
        return host_port

    def argv(self):
        return [
            QEMU, "-M", "virt", "-cpu", "cortex-a53", "-smp", str(self.cpus),
            "-m", str(self.memory), "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot",
            "-kernel", self.kernel, "-initrd", self.initrd, "-append", self.append,
            "-drive", "file=%s,format=raw,if=none,id=hd0" % self.disk,
            "-device", "virtio-blk-pci,drive=hd0",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-%s:3493" % (self.port, self.guest)
            + "".join(",hostfwd=tcp:127.0.0.1:%d-%s:%d" % (host, self.guest, guest)
                      for host, guest in self.forwards),
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            # Entropy from the host, as a Pi's hardware generator gives: TLS
            # (upsd's STARTTLS) waits for the kernel's random pool otherwise.
            "-device", "virtio-rng-pci",
        ] + self.qemu_args

    def start(self):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._reader, daemon=True).start()
        return self

    def _reader(self):
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                break
            with self.lock:
                self.output += chunk
                self.lock.notify_all()
        with self.lock:
            self.lock.notify_all()

    def text(self):
        with self.lock:
            return self.output.decode("utf-8", "replace")

    def expect(self, pattern, timeout, start=0):
        """Wait until console output after offset `start` matches; return the match."""
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                m = regex.search(self.output, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError("console never showed %r; last output:\n%s" % (
                        pattern, self.output[-3000:].decode("utf-8", "replace")))
                self.lock.wait(min(left, 0.5))

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def run(self, command, timeout=60):
        """Run `command` in the console shell; return (status, output)."""
        tag = "%08x" % (int(time.monotonic() * 1e6) & 0xFFFFFFFF)
        with self.lock:
            start = len(self.output)
        # The markers are split in the typed text so the echo of the typed
        # line itself never matches.
        self.send("echo '<<%s''>>'; %s; echo \"<<%s $?>\"'>'\n" % (tag, command, tag))
        begin = self.expect(r"<<%s>>\r?\n" % tag, timeout, start)
        end = self.expect(r"<<%s (\d+)>>" % tag, timeout, begin.end())
        out = self.output[begin.end():end.start()].decode("utf-8", "replace")
        return int(end.group(1)), out.replace("\r\n", "\n")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def nut_list_var(port, ups, timeout=1.0):
    """One `LIST VAR ups` over a fresh connection; the reply's lines, or None
    when the UPS's data is not served yet: no answer, an ERR, or a reply
    without the device's model or with ups.status still "WAIT" (what
    upsd serves before its driver has sent the data)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"LIST VAR %s\n" % ups.encode())
            data = b""
            while not data.endswith(b"END LIST VAR %s\n" % ups.encode()):
                chunk = s.recv(65536)
                if not chunk or data.startswith(b"ERR"):
                    return None
                data += chunk
            lines = data.decode().splitlines()
            status = [line for line in lines if line.startswith("VAR %s ups.status " % ups)]
            model = [line for line in lines if line.startswith("VAR %s device.model " % ups)]
            if not status or not model or status[0].endswith('"WAIT"'):
                return None
            return lines
    except OSError:
        return None


def nut_list_ups(port, timeout=5.0):
    """The UPS names a plain `LIST UPS` returns, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"LIST UPS\n")
            data = b""
            while not data.endswith(b"END LIST UPS\n"):
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    return [line.split()[1] for line in data.decode().splitlines() if line.startswith("UPS ")]


def wait_serving(port, ups, timeout):
    """Retry LIST VAR until a full reply; return seconds waited, or None."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if nut_list_var(port, ups):
            return time.monotonic() - start
        time.sleep(0.1)
    return None
