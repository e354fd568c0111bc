"""Helpers for the provisioning tests: a boot folder, a data partition and
an /etc/nut in a temporary directory, and network namespaces."""

import grp
import os
import signal
import subprocess
import uuid


from nutapp.provision.main import main

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "..", "nutapp", "provision", "examples")


def nut_group():
    try:
        grp.getgrnam("nut")
        return "nut"
    except KeyError:
        return grp.getgrgid(os.getgid()).gr_name


class Box:
    """One appliance's three folders."""

    def __init__(self, tmp):
        self.boot = os.path.join(tmp, "boot", "nut")
        self.data = os.path.join(tmp, "data")
        self.etc = os.path.join(tmp, "etc-nut")
        os.makedirs(self.boot)
        os.makedirs(self.data)
        self.top = tmp
        self.group = nut_group()

    def argv(self, *extra):
        return ["--boot", self.boot, "--data", self.data, "--etc", self.etc,
                "--group", self.group, "-q"] + list(extra)

    def run(self, *extra, step_hook=None):
        return main(self.argv(*extra), step_hook=step_hook)

    def put(self, name, text):
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(os.path.join(self.boot, name), mode) as f:
            f.write(text)

    def boot_text(self, name):
        with open(os.path.join(self.boot, name), "rb") as f:
            return f.read().decode("utf-8")

    def etc_text(self, name):
        with open(os.path.join(self.etc, name), "rb") as f:
            return f.read().decode("utf-8")

    def has(self, name):
        return os.path.exists(os.path.join(self.boot, name))

    def errors(self):
        return self.boot_text("PROVISIONING-ERRORS.txt")


def snapshot(top):
    """{relative path: (kind, mode, uid, gid, content or link target)} of a tree."""
    out = {}
    if not os.path.lexists(top):
        return out
    top_real = os.path.realpath(top)
    for root, dirs, files in os.walk(top_real):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, top_real)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("dir", st.st_mode & 0o7777, st.st_uid, st.st_gid)
            else:
                with open(path, "rb") as f:
                    out[rel] = ("file", st.st_mode & 0o7777, st.st_uid, st.st_gid, f.read())
    return out


class Netns:
    """Two network namespaces joined by a veth pair (10.x addresses inside
    only), removed at the end of the test."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.a, self.b = "nutpa" + tag, "nutpb" + tag
        self.if_a, self.if_b = "pva" + tag, "pvb" + tag
        self._ip("netns", "add", self.a)
        self._ip("netns", "add", self.b)
        self._ip("link", "add", self.if_a, "type", "veth", "peer", "name", self.if_b)
        self._ip("link", "set", self.if_a, "netns", self.a)
        self._ip("link", "set", self.if_b, "netns", self.b)
        for ns, ifname in ((self.a, self.if_a), (self.b, self.if_b)):
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "link", "set", ifname, "up")

    def addr(self, ns, cidr):
        ifname = self.if_a if ns == self.a else self.if_b
        extra = ["nodad"] if ":" in cidr else []  # no duplicate detection wait
        self._ip("-n", ns, "addr", "add", cidr, "dev", ifname, *extra)

    def run(self, ns, *cmd, **kw):
        return subprocess.run(["ip", "netns", "exec", ns] + list(cmd), **kw)

    def popen(self, ns, *cmd, **kw):
        return subprocess.Popen(["ip", "netns", "exec", ns] + list(cmd), **kw)

    def close(self):
        """Stop what the test left running in the namespaces, then remove them."""
        for ns in (self.a, self.b):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], check=False)

    @staticmethod
    def _ip(*args):
        subprocess.run(["ip"] + list(args), check=True)
