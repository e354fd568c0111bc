#!/usr/bin/env python3
"""Where a GET VAR round trip's CPU goes: both stacks next to reference servers.

Runs nutapp's upsd and NUT's C upsd (as bench/run.py does) together with the
reference servers of bench/floors/servers.py (a bare epoll loop, asyncio,
nutapp's session on each), and measures upsd CPU time per request and req/s
for every one of them, back to back, on 1 and 50 connections,
request-response. Prints a Markdown table and writes bench/results/floors.md.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run as bench  # noqa: E402

KINDS = ["epoll-fixed", "epoll-session", "asyncio-reader", "asyncio-fixed",
         "asyncio-session"]


class Reference:
    """A reference server process, shaped like run.Stack for run_get."""

    def __init__(self, kind, port, dump):
        self.label = kind
        self.port = port
        env = dict(os.environ, NUTAPP_BENCH_DUMP=dump)
        self.upsd = subprocess.Popen([sys.executable, os.path.join(HERE, "floors", "servers.py"),
                                      kind, str(port)], env=env)

    def upsd_cpu(self):
        return bench.Stack.upsd_cpu(self)

    def stop(self):
        bench._stop(self.upsd)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--out", default=os.path.join(HERE, "results", "floors.md"))
    args = p.parse_args(argv)

    base, nutload = bench.prepare("nutapp-floors-", args.nice)
    ports = bench._free_ports(2 + len(KINDS))
    runas = ["-u", bench.RUN_AS] if bench.RUN_AS else []
    py = [sys.executable, "-m", "nutapp"]
    servers = [
        bench.Stack("nutapp", "nutapp upsd", base, ports[0], bench.DEFAULT_DUMP,
                    py + ["dummy-ups", "-a", bench.UPS, "-F"] + runas,
                    py + ["upsd", "-F"] + runas, "MAXCONN_PER_SOURCE 4096\n"),
        bench.Stack("nut-c", "NUT C upsd", base, ports[1], bench.DEFAULT_DUMP,
                    [bench.C_DUMMY, "-a", bench.UPS, "-F"] + runas,
                    [bench.C_UPSD, "-F"] + runas, ""),
    ]
    results = {}
    try:
        for s in servers:
            s.start_driver()
            s.start_upsd()
        for kind, port in zip(KINDS, ports[2:]):
            servers.append(Reference(kind, port, bench.DEFAULT_DUMP))
        time.sleep(1.0)
        load0 = bench._loadavg()
        for rep in range(args.repeat):
            for conns in (1, 50):
                for s in servers:
                    r = bench.run_get(nutload, s, conns, 1, args.duration, 0.3)
                    results.setdefault((s.label, conns), []).append(r)
        load1 = bench._loadavg()
    finally:
        for s in servers:
            s.stop()

    lines = [
        "# CPU per GET VAR, request-response: the stacks and reference servers",
        "",
        "%s; load average %s -> %s; medians of %d back-to-back runs of %.0f s."
        % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load0, load1,
           args.repeat, args.duration),
        "",
        "| server | 1 conn: us CPU/req | 1 conn: req/s | 50 conns: us CPU/req | 50 conns: req/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in servers:
        cells = []
        for conns in (1, 50):
            runs = results[(s.label, conns)]
            cells.append("%.1f" % statistics.median(r["cpu_us"] for r in runs))
            cells.append("{:,.0f}".format(statistics.median(r["rps"] for r in runs)))
        lines.append("| %s | %s |" % (s.label, " | ".join(cells)))
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
