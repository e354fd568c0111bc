#!/usr/bin/env python3
"""Side-by-side GET VAR runs of variants of nutapp's upsd, with the C upsd.

    python bench/variants.py [--depth N] [--conns 1,50] [--rounds R] TREE...

Each TREE is a folder holding a `nutapp/` package (a checkout, or a copy
with an experimental change); its dummy-ups and upsd run with PYTHONPATH set
to it. NUT's C upsd and bench/floors' epoll-fixed server run too. Every
round runs every server back to back, so the ratios to C are paired. Prints
req/s, upsd user and system CPU per request (us) and the median ratio to C
with the ratio of every round: what a change does on this machine, before
it is committed. Listens on 127.0.0.1 only.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import floors  # noqa: E402
import run as bench  # noqa: E402


def cpu_times(pid):
    """upsd's user and system CPU seconds so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = float(os.sysconf("SC_CLK_TCK"))
    return int(fields[11]) / tick, int(fields[12]) / tick


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="+", help="folders holding a nutapp/ package")
    p.add_argument("--depth", type=int, default=1, help="requests in flight per connection")
    p.add_argument("--conns", default="1,50", help="connection counts, comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--nice", type=int, default=10)
    args = p.parse_args(argv)
    conns_list = [int(c) for c in args.conns.split(",")]

    base, nutload = bench.prepare("nutapp-variants-", args.nice)
    ports = bench._free_ports(2 + len(args.trees))
    runas = ["-u", bench.RUN_AS] if bench.RUN_AS else []
    py = [sys.executable, "-m", "nutapp"]
    servers = [bench.Stack("nut-c", "NUT C", base, ports[0], bench.DEFAULT_DUMP,
                           [bench.C_DUMMY, "-a", bench.UPS, "-F"] + runas,
                           [bench.C_UPSD, "-F"] + runas, "")]
    for i, tree in enumerate(args.trees):
        s = bench.Stack("v%d" % i, tree, base, ports[1 + i], bench.DEFAULT_DUMP,
                        py + ["dummy-ups", "-a", bench.UPS, "-F"] + runas,
                        py + ["upsd", "-F"] + runas, "MAXCONN_PER_SOURCE 4096\n")
        s.env["PYTHONPATH"] = os.path.abspath(tree)
        servers.append(s)
    results = {}
    try:
        for s in servers:
            s.start_driver()
            s.start_upsd()
        servers.append(floors.Reference("epoll-fixed", ports[-1], bench.DEFAULT_DUMP))
        time.sleep(1.5)
        for _ in range(args.rounds):
            for conns in conns_list:
                for s in servers:
                    u0, s0 = cpu_times(s.upsd.pid)
                    out = subprocess.run(
                        [nutload, "get", bench.HOST, str(s.port), bench.UPS, bench.VAR,
                         str(conns), str(args.depth), str(args.duration), "0.3"],
                        check=True, capture_output=True, text=True).stdout
                    r = bench.parse_kv(out)
                    u1, s1 = cpu_times(s.upsd.pid)
                    n = max(r["total"], 1)
                    results.setdefault((s.label, conns), []).append(
                        (r["rps"], (u1 - u0) * 1e6 / n, (s1 - s0) * 1e6 / n))
    finally:
        for s in servers:
            s.stop()
    print("depth %d, %d rounds of %.1f s" % (args.depth, args.rounds, args.duration))
    for conns in conns_list:
        ref = results[("NUT C", conns)]
        for s in servers:
            runs = results[(s.label, conns)]
            ratios = [a[0] / b[0] for a, b in zip(runs, ref)]
            print("%-24s %3d conns  %9.0f req/s  user %5.1f us  sys %5.1f us  "
                  "ours/C %.3f  [%s]" % (
                      s.label[-24:], conns, statistics.median(r[0] for r in runs),
                      statistics.median(r[1] for r in runs),
                      statistics.median(r[2] for r in runs),
                      statistics.median(ratios), " ".join("%.2f" % x for x in ratios)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
