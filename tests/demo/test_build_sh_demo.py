"""The README's first command, `./build.sh demo`, as a person runs it.

It must print how to query the simulated UPS only once that works, answer
Debian's upsc and our own clients on the address it printed, and stop
everything on Ctrl-C with exit status 0, leaving no process behind.
"""

import os
import re
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
VENV_NUTAPP = TOP / ".venv" / "bin" / "nutapp"


class Output:
    """A process's output lines, read by a thread (select on a buffered
    pipe misses lines already in Python's buffer)."""

    def __init__(self, proc):
        self.lines = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, f):
        for line in f:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, pattern, timeout):
        """The match of the first line from here matching pattern."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                pytest.fail("no line matching %r from ./build.sh demo:\n%s"
                            % (pattern, self.seen))
            self.seen += line
            m = re.search(pattern, line)
            if m:
                return m


def processes_using(path):
    """Pids whose environment names path (the demo's NUT_CONFPATH)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path("/proc", pid, "environ").read_bytes()
            except OSError:
                continue
            if str(path).encode() in cmd:
                found.append(int(pid))
    return found


@pytest.mark.skipif(not VENV_NUTAPP.exists(), reason="./build.sh setup makes .venv")
def test_build_sh_demo(tmp_path):
    proc = subprocess.Popen([str(TOP / "build.sh"), "demo"], cwd=TOP, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        out = Output(proc)
        port = int(out.until(r"port (\d+), serving UPS \"demo\"", 60).group(1))
        target = "demo@localhost" if port == 3493 else "demo@localhost:%d" % port
        out.until(r"Ctrl-C stops everything", 5)
        assert "    upsc %s " % target in out.seen

        # The banner is printed only once the UPS answers: no wait here.
        if shutil.which("upsc"):
            r = subprocess.run(["upsc", target, "ups.status"], capture_output=True, text=True,
                               timeout=30)
            assert r.stdout == "OL DISCHRG\n", r.stderr
        r = subprocess.run([str(VENV_NUTAPP), "upsc", target, "device.mfr"],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout == "American Power Conversion\n", r.stderr
        # The banner's upsrw line, as printed.
        r = subprocess.run([str(VENV_NUTAPP), "upsrw", "-s", "ups.status=OB DISCHRG",
                            "-u", "admin", "-p", "demo", "-w", target],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "SUCCESS" in r.stderr, r.stderr
        r = subprocess.run([str(VENV_NUTAPP), "upsc", target, "ups.status"],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout == "OB DISCHRG\n"
        r = subprocess.run([str(VENV_NUTAPP), "upscmd", "-l", target], capture_output=True,
                           text=True, timeout=30)
        assert "load.off" in r.stdout

        conf = TOP / "out" / "demo" / "etc"
        assert len(processes_using(conf)) >= 2  # upsd and the driver, at least
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out.until(r"nutapp demo: stopped", 30)
        assert proc.wait(10) == 0, out.seen
        assert "Traceback" not in out.seen
        for _ in range(50):
            if not processes_using(conf):
                break
            time.sleep(0.1)
        assert processes_using(conf) == [], "left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in processes_using(TOP / "out" / "demo" / "etc"):
            os.kill(pid, signal.SIGKILL)
