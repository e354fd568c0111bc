#!/usr/bin/env python3
"""Benchmark nutapp's upsd + dummy-ups against Debian's C upsd + dummy-ups.

Both stacks serve the same device dump through dummy-ups, on loopback ports
only, as the same user (nut when run as root, else the caller), started and
measured in the same run. The client side is `nutload` (nutload.c beside
this file), built here with the machine's C compiler, so the load generator
is not the bottleneck (its CPU share is printed with every GET figure).

Measured:
  - start-up: process start until a TCP connect + `VER` is answered
    ("listening"), and until `GET VAR <ups> ups.status` returns a value
    ("serving", i.e. the driver's dump has arrived); median of --starts.
  - resident memory from /proc/<pid>/smaps_rollup, upsd and driver process
    trees summed separately: idle after start, and holding --idle-conns
    connections that each had one `VER` answered.
  - GET VAR throughput on 1 and 50 persistent connections, request-response
    (one request in flight per connection) and pipelined (--depth in
    flight); median of --repeat runs, the two stacks interleaved.
  - LIST VAR round trip on one persistent connection (median of --lists).

Results are printed and written as Markdown (--out, default
bench/results/latest.md) and JSON (--json). See bench/README.md.
"""

import argparse
import grp
import json
import os
import platform
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
DEFAULT_DUMP = os.path.join(TOP, "tests", "data", "nut-ddl",
                            "APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev")
C_UPSD = "/lib/nut/upsd"
C_DUMMY = "/lib/nut/dummy-ups"
HOST = "127.0.0.1"  # loopback only, never anything else
UPS = "ups"
VAR = "ups.status"
FD_LIMIT = 8192

TARGET_GET_RATIO = 1.0    # ours/C, at least
TARGET_LIST_RATIO = 0.05  # ours/C, at most
TARGET_RSS_MB = 25.0      # upsd holding the idle connections, at most
TARGET_LISTEN_S = 0.5     # at most


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# -- the load generator -------------------------------------------------------

def build_nutload(outdir):
    """Compile nutload.c with the machine's compiler; returns the binary."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise SystemExit("bench: no C compiler (install gcc)")
    os.makedirs(outdir, exist_ok=True)
    exe = os.path.join(outdir, "nutload")
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-o", exe,
                    os.path.join(HERE, "nutload.c")], check=True)
    return exe


def parse_kv(text):
    out = {}
    for word in text.split():
        if "=" in word:
            k, v = word.split("=", 1)
            out[k] = float(v)
    return out


# -- one stack: a dummy-ups driver and an upsd --------------------------------

class Stack:
    """A configuration directory plus the driver and upsd processes."""

    def __init__(self, name, label, base, port, dump, driver_cmd, upsd_cmd, extra_conf):
        self.name = name
        self.label = label
        self.port = port
        self.conf = os.path.join(base, name, "etc")
        self.state = os.path.join(base, name, "state")
        self.driver_cmd = driver_cmd
        self.upsd_cmd = upsd_cmd
        self.driver = None
        self.upsd = None
        self._write_config(dump, extra_conf)
        self.env = dict(os.environ, NUT_CONFPATH=self.conf, NUT_STATEPATH=self.state)

    def _write_config(self, dump, extra_conf):
        for d in (self.conf, self.state):
            os.makedirs(d, exist_ok=True)
        shutil.copy(dump, os.path.join(self.conf, "bench.dev"))
        files = {
            "ups.conf": "[%s]\n\tdriver = dummy-ups\n\tport = bench.dev\n"
                        "\tmode = dummy-once\n\tdesc = \"bench\"\n" % UPS,
            "upsd.conf": "LISTEN %s %d\nMAXCONN 4096\n%s" % (HOST, self.port, extra_conf),
            "upsd.users": "[bench]\n\tpassword = bench\n\tupsmon secondary\n",
        }
        for fname, text in files.items():
            with open(os.path.join(self.conf, fname), "w") as f:
                f.write(text)
        if RUN_AS:
            gid = grp.getgrnam(RUN_AS).gr_gid
            for fname in os.listdir(self.conf):
                os.chown(os.path.join(self.conf, fname), 0, gid)
                os.chmod(os.path.join(self.conf, fname), 0o640)
            os.chown(self.conf, 0, gid)
            os.chmod(self.conf, 0o750)
            os.chown(self.state, 0, gid)
            os.chmod(self.state, 0o770)

    def start_driver(self):
        self.driver = subprocess.Popen(self.driver_cmd, env=self.env, cwd=self.conf,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        sock = os.path.join(self.state, "dummy-ups-%s" % UPS)
        deadline = time.monotonic() + 15
        while not os.path.exists(sock):
            if self.driver.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: %s driver did not start (%s)"
                                 % (self.label, " ".join(self.driver_cmd)))
            time.sleep(0.01)

    def start_upsd(self):
        """Start upsd; returns (seconds to listening, seconds to serving)."""
        t0 = time.monotonic()
        self.upsd = subprocess.Popen(self.upsd_cmd, env=self.env, cwd=self.conf,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        listening = _wait_for_reply(self.port, "VER\n", "Network UPS Tools", t0, self.upsd)
        serving = _wait_for_reply(self.port, "GET VAR %s %s\n" % (UPS, VAR), "VAR ",
                                  t0, self.upsd)
        return listening, serving

    def stop_upsd(self):
        _stop(self.upsd)
        self.upsd = None

    def stop(self):
        for p in (self.upsd, self.driver):
            _stop(p)
        self.upsd = self.driver = None

    def rss(self):
        """(upsd MB, driver MB): resident memory of each process tree."""
        return _tree_rss(self.upsd.pid), _tree_rss(self.driver.pid)

    def upsd_cpu(self):
        """CPU seconds (user + system) upsd has used so far."""
        with open("/proc/%d/stat" % self.upsd.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def _wait_for_reply(port, request, prefix, t0, proc, timeout=20.0):
    while True:
        if proc.poll() is not None:
            raise SystemExit("bench: server exited with %s during start-up" % proc.returncode)
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                s.sendall(request.encode())
                reply = s.makefile("rb").readline().decode("latin-1")
            if reply.startswith(prefix):
                return time.monotonic() - t0
        except OSError:
            pass
        if time.monotonic() - t0 > timeout:
            raise SystemExit("bench: no %r reply on port %d after %.0f s"
                             % (request.strip(), port, timeout))
        time.sleep(0.002)


def _stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _socket_count(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree_rss(pid):
    """Rss of pid and its descendants, in MB, from smaps_rollup."""
    kids = _children()
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total / 1024.0


# -- the measurements ---------------------------------------------------------

def measure_start(stack, starts):
    runs = []
    for i in range(starts):
        runs.append(stack.start_upsd())
        if i < starts - 1:
            stack.stop_upsd()
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))


def run_get(nutload, stack, conns, depth, seconds, warmup):
    """nutload's figures, plus the server's CPU time per reply (cpu_us)."""
    cpu0 = stack.upsd_cpu()
    out = subprocess.run([nutload, "get", HOST, str(stack.port), UPS, VAR, str(conns),
                          str(depth), str(seconds), str(warmup)],
                         check=True, capture_output=True, text=True).stdout
    r = parse_kv(out)
    r["cpu_us"] = (stack.upsd_cpu() - cpu0) * 1e6 / max(r["total"], 1)
    return r


def measure_get(nutload, stacks, args, m):
    """Every GET configuration, the stacks interleaved run by run.

    The machine may be shared: each repetition runs the stacks back to back,
    and ours/C is the median of those paired ratios (m["paired"]).
    """
    configs = [("get_1_rr", 1, 1), ("get_1_pipe", 1, args.depth),
               ("get_50_rr", 50, 1), ("get_50_pipe", 50, args.depth)]
    loadcpu = {}
    runs = {}
    for rep in range(args.repeat):
        for key, conns, depth in configs:
            for s in stacks:
                r = run_get(nutload, s, conns, depth, args.duration, args.warmup)
                log("%s %s run %d: %.0f req/s, upsd %.1f us CPU per request "
                    "(nutload CPU share %.2f)"
                    % (s.label, key, rep + 1, r["rps"], r["cpu_us"], r["cpu"]))
                runs.setdefault((key, s.label), []).append(r["rps"])
                runs.setdefault((key + "_cpu", s.label), []).append(r["cpu_us"])
                loadcpu[s.label] = max(loadcpu.get(s.label, 0.0), r["cpu"])
    for (key, label), values in runs.items():
        m.setdefault(key, {})[label] = statistics.median(values)
    m["nutload_cpu"] = loadcpu
    if len(stacks) == 2:
        a, b = stacks[0].label, stacks[1].label
        paired = m.setdefault("paired", {})
        for key, _, _ in configs:
            for k in (key, key + "_cpu"):
                paired[k] = statistics.median(
                    x / y for x, y in zip(runs[(k, a)], runs[(k, b)]) if y)


def run_list(nutload, stack, count):
    out = subprocess.run([nutload, "list", HOST, str(stack.port), UPS, str(count)],
                         check=True, capture_output=True, text=True).stdout
    return parse_kv(out)


def run_idle(nutload, stack, conns, settle=1.0):
    """Hold `conns` connections open; returns (upsd MB, driver MB, sockets
    upsd had open meanwhile)."""
    p = subprocess.Popen([nutload, "idle", HOST, str(stack.port), str(conns)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit("bench: nutload idle failed against %s" % stack.label)
        time.sleep(settle)
        return stack.rss() + (_socket_count(stack.upsd.pid),)
    finally:
        p.stdin.close()
        p.wait(30)


# -- report -------------------------------------------------------------------

def _fmt(x, unit):
    if x is None:
        return "-"
    if unit == "rps":
        return "{:,.0f}".format(x)
    if unit == "n":
        return "%d" % x
    if unit == "us":
        return "%.1f us" % x
    if unit == "ms":
        return "%.2f ms" % x
    if unit == "s":
        return "%.3f s" % x
    if unit == "MB":
        return "%.1f MB" % x
    return str(x)


def report(results, args):
    stacks = results["stacks"]
    ours, c = stacks[0], (stacks[1] if len(stacks) > 1 else None)
    m = results["metrics"]
    head = ["| measurement | %s |" % ours, "|---|---:|"]
    if c:
        head = ["| measurement | %s | %s | ours/C | target | result |" % (ours, c),
                "|---|---:|---:|---:|---|---|"]
    rows = []
    for key, title, unit, target in _ROWS:
        if key not in m:
            continue
        a = m[key].get(ours)
        if not c:
            rows.append("| %s | %s |" % (title, _fmt(a, unit)))
            continue
        b = m[key].get(c)
        ratio = m.get("paired", {}).get(key)
        if ratio is None and unit != "n":
            ratio = a / b if a is not None and b else None
        verdict = ""
        tdesc = ""
        if target:
            tdesc, ok = target(a, ratio)
            verdict = "pass" if ok else "**FAIL**"
        rows.append("| %s | %s | %s | %s | %s | %s |" % (
            title, _fmt(a, unit), _fmt(b, unit),
            "%.3gx" % ratio if ratio is not None else "-", tdesc, verdict))
    info = results["machine"]
    lines = [
        "# nutapp upsd vs NUT %s upsd (C)" % results.get("c_version", "?"),
        "",
        "Run on %s, %d CPUs, %s, Python %s; as user %s; device dump %s."
        % (info["date"], info["cpus"], info["kernel"], info["python"], info["user"],
           os.path.basename(args.dump)),
        "Load average %s at the start, %s at the end%s."
        % (results["load"][0], results["load"][1], results.get("nice", "")),
        "",
    ]
    # The run itself keeps about two tasks busy; much more than that at its
    # start means other work.
    busy = float(results["load"][0]) > 1.5 * info["cpus"]
    if busy:
        lines += [
            "**The machine was busy** (load average at the start above 1.5x its CPU "
            "count): other work "
            "competed for the CPUs, so throughput and round-trip figures are lower and "
            "noisier than on a quiet machine. CPU time per request and memory are "
            "still comparable between the stacks.",
            "",
        ]
    lines += [
        "GET: `GET VAR %s %s` for %.0f s after %.1f s warm-up, median of %d runs; "
        "pipelined = %d requests in flight per connection; GET ours/C is the median "
        "of the ratios of back-to-back runs. CPU per GET: upsd's user + system time "
        "over the replies it sent. LIST: median of %d round trips. Start-up: median "
        "of %d starts. RSS: Rss from smaps_rollup, summed over each process tree."
        % (UPS, VAR, args.duration, args.warmup, args.repeat, args.depth, args.lists,
           args.starts),
        "",
    ] + head + rows + [""]
    cpu = m.get("nutload_cpu")
    if cpu:
        lines.append("Load generator CPU share during the GET runs (1.0 = one full core): "
                     + ", ".join("%s max %.2f" % (k, v) for k, v in cpu.items()) + ".")
        lines.append("")
    return "\n".join(lines)


def _target_get(a, ratio):
    return ">= %.1fx C" % TARGET_GET_RATIO, ratio is not None and ratio >= TARGET_GET_RATIO


def _target_list(a, ratio):
    return "<= 1/20 of C", ratio is not None and ratio <= TARGET_LIST_RATIO


def _target_rss(a, ratio):
    return "<= %.0f MB" % TARGET_RSS_MB, a is not None and a <= TARGET_RSS_MB


def _target_listen(a, ratio):
    return "<= %.1f s" % TARGET_LISTEN_S, a is not None and a <= TARGET_LISTEN_S


_ROWS = [
    ("get_1_rr", "GET VAR req/s, 1 conn, request-response", "rps", _target_get),
    ("get_1_pipe", "GET VAR req/s, 1 conn, pipelined", "rps", _target_get),
    ("get_50_rr", "GET VAR req/s, 50 conns, request-response", "rps", _target_get),
    ("get_50_pipe", "GET VAR req/s, 50 conns, pipelined", "rps", _target_get),
    ("get_1_rr_cpu", "upsd CPU per GET, 1 conn, request-response", "us", None),
    ("get_1_pipe_cpu", "upsd CPU per GET, 1 conn, pipelined", "us", None),
    ("get_50_rr_cpu", "upsd CPU per GET, 50 conns, request-response", "us", None),
    ("get_50_pipe_cpu", "upsd CPU per GET, 50 conns, pipelined", "us", None),
    ("list_ms", "LIST VAR round trip (median)", "ms", _target_list),
    ("list_mean_ms", "LIST VAR round trip (mean)", "ms", None),
    ("rss_idle_upsd", "RSS idle, upsd", "MB", None),
    ("rss_idle_driver", "RSS idle, dummy-ups", "MB", None),
    ("rss_conns_upsd", "RSS with N idle conns, upsd", "MB", _target_rss),
    ("rss_conns_driver", "RSS with N idle conns, dummy-ups", "MB", None),
    ("rss_conns_total", "RSS with N idle conns, upsd + dummy-ups", "MB", None),
    ("conns_sockets", "sockets open in upsd while holding N idle conns", "n", None),
    ("listen_s", "start to listening (VER answered)", "s", _target_listen),
    ("serving_s", "start to serving (GET VAR answered)", "s", None),
]


# -- main ---------------------------------------------------------------------

RUN_AS = None


def main(argv=None):
    global RUN_AS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=3.0, help="seconds per GET run")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds before counting")
    p.add_argument("--repeat", type=int, default=3, help="GET runs per configuration")
    p.add_argument("--depth", type=int, default=16, help="pipelined requests in flight")
    p.add_argument("--lists", type=int, default=50, help="LIST VAR round trips")
    p.add_argument("--idle-conns", type=int, default=1000)
    p.add_argument("--starts", type=int, default=3, help="upsd starts to time")
    p.add_argument("--only", choices=["nutapp", "c"], help="run one stack only")
    p.add_argument("--dump", default=DEFAULT_DUMP, help="device dump for dummy-ups")
    p.add_argument("--python", default=sys.executable, help="interpreter for nutapp")
    p.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"))
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--nice", type=int, default=10,
                   help="as root, run servers and nutload at nice -N (0: off)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)

    if os.getuid() == 0:
        try:
            pwd.getpwnam("nut")
            grp.getgrnam("nut")
            RUN_AS = "nut"
        except KeyError:
            RUN_AS = None
    _raise_fd_limit()

    base = tempfile.mkdtemp(prefix="nutapp-bench-")
    if RUN_AS:
        os.chmod(base, 0o755)
    nutload = build_nutload(os.path.join(base, "bin"))
    runas = ["-u", RUN_AS] if RUN_AS else []
    ports = _free_ports(2)
    stacks = []
    if args.only in (None, "nutapp"):
        py = [args.python, "-m", "nutapp"]
        stacks.append(Stack("nutapp", "nutapp", base, ports[0], args.dump,
                            py + ["dummy-ups", "-a", UPS, "-F"] + runas,
                            py + ["upsd", "-F"] + runas,
                            "MAXCONN_PER_SOURCE 4096\n"))
    if args.only in (None, "c"):
        for exe in (C_UPSD, C_DUMMY):
            if not os.access(exe, os.X_OK):
                raise SystemExit("bench: %s missing (Debian's nut-server)" % exe)
        stacks.append(Stack("nut-c", "NUT C", base, ports[1], args.dump,
                            [C_DUMMY, "-a", UPS, "-F"] + runas,
                            [C_UPSD, "-F"] + runas, ""))

    results = {"stacks": [s.label for s in stacks], "metrics": {},
               "machine": _machine(), "c_version": _c_version(), "load": [_loadavg()]}
    if args.nice and os.getuid() == 0:
        # Shared machines: the servers and nutload inherit this, both stacks alike.
        os.nice(-args.nice)
        results["nice"] = "; servers and load generator ran at nice -%d" % args.nice
    m = results["metrics"]

    def put(key, stack, value):
        m.setdefault(key, {})[stack.label] = value

    try:
        for s in stacks:
            log("%s: starting dummy-ups and upsd on %s port %d" % (s.label, HOST, s.port))
            s.start_driver()
            listen, serving = measure_start(s, args.starts)
            put("listen_s", s, listen)
            put("serving_s", s, serving)
        time.sleep(1.0)
        for s in stacks:
            up, drv = s.rss()
            put("rss_idle_upsd", s, up)
            put("rss_idle_driver", s, drv)

        measure_get(nutload, stacks, args, m)

        for s in stacks:
            r = run_list(nutload, s, args.lists)
            log("%s LIST VAR: median %.0f us, mean %.0f us, %d bytes"
                % (s.label, r["median_us"], r["mean_us"], r["bytes"]))
            put("list_ms", s, r["median_us"] / 1000.0)
            put("list_mean_ms", s, r["mean_us"] / 1000.0)

        for s in stacks:
            up, drv, socks = run_idle(nutload, s, args.idle_conns)
            log("%s with %d idle connections: upsd %.1f MB (%d sockets open), driver %.1f MB"
                % (s.label, args.idle_conns, up, socks, drv))
            put("conns_sockets", s, socks)
            put("rss_conns_upsd", s, up)
            put("rss_conns_driver", s, drv)
            put("rss_conns_total", s, up + drv)
    finally:
        results["load"].append(_loadavg())
        for s in stacks:
            s.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    text = report(results, args).replace("N idle conns", "%d idle conns" % args.idle_conns)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
    return 0


def prepare(prefix, nice):
    """The set-up floors.py and variants.py share: as root, the servers run as
    nut and everything at nice -`nice`; the open-file limit raised; a
    temporary folder with nutload built in it. Returns (folder, nutload)."""
    global RUN_AS
    if os.getuid() == 0:
        RUN_AS = "nut"
        if nice:
            os.nice(-nice)
    _raise_fd_limit()
    base = tempfile.mkdtemp(prefix=prefix)
    os.chmod(base, 0o755)
    return base, build_nutload(os.path.join(base, "bin"))


def _raise_fd_limit():
    """Room for the idle connections in both servers and in nutload."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_LIMIT
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def _machine():
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count() or 0,
        "kernel": "Linux " + platform.release(),
        "python": platform.python_version(),
        "user": RUN_AS or pwd.getpwuid(os.getuid()).pw_name,
    }


def _c_version():
    try:
        out = subprocess.run([C_UPSD, "-V"], capture_output=True, text=True).stdout
        return out.split()[-1]
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
