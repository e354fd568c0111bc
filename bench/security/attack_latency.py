"""A well-behaved client's GET latency while upsd is under attack, for
nutapp's upsd and Debian's C upsd (NUT 2.8.0, NSS) side by side.

    sudo .venv/bin/python bench/security/attack_latency.py [--requests N] [--seconds S]

Both servers get TLS (our CERTFILE; Debian's NSS database and CERTIDENT)
and the same dummy UPS. The measuring client polls `GET VAR ups ups.status`
on one plaintext connection from 127.0.0.1, first with the server idle,
then while attacker processes from other loopback addresses run, each for
its own attack:

- failed logins: USERNAME/PASSWORD then LOGIN again and again
- full TLS handshakes, as fast as they complete
- garbage after STARTTLS (random bytes instead of a ClientHello)
- dribblers: connections sending a byte now and then, never a line

Reported: median and 99th percentile latency idle and under attack, and
the ratio (attack / idle). Needs root (Debian's upsd drops to nut), Debian's
nut-server and libnss3-tools.
"""

import argparse
import multiprocessing
import os
import shutil
import socket
import ssl
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "security"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))  # stack imports ports

from certs import issue, make_ca, write_certfile  # noqa: E402
from debian import DebianStack, nss_server_db  # noqa: E402
from ports import free_port  # noqa: E402
from stack import UPS, Line, Stack, cleanup, make_base  # noqa: E402

USERS = "[mon]\n\tpassword = monpw\n\tupsmon secondary\n"


# -- attackers (each in its own process) -----------------------------------------

def failed_logins(port, src, stop):
    while not stop.is_set():
        try:
            with Line("127.0.0.1", port, src=src, timeout=5) as c:
                c.login("mon", "wrong")
                for _ in range(50):
                    c.ask("LOGIN %s" % UPS)
        except OSError:
            time.sleep(0.01)


def tls_handshakes(port, src, stop):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    while not stop.is_set():
        try:
            with Line("127.0.0.1", port, src=src, timeout=5) as c:
                c.starttls(ctx)
        except (OSError, AssertionError):
            time.sleep(0.01)


def tls_garbage(port, src, stop):
    while not stop.is_set():
        try:
            with Line("127.0.0.1", port, src=src, timeout=5) as c:
                if c.ask("STARTTLS") == "OK STARTTLS":
                    c.sock.sendall(os.urandom(1024))
                    c.sock.recv(100)
        except OSError:
            time.sleep(0.01)


def dribblers(port, src, stop, count=20):
    socks = []
    while not stop.is_set():
        while len(socks) < count:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                             source_address=(src, 0))
                socks.append(s)
            except OSError:
                break
        for s in list(socks):
            try:
                s.sendall(b"G")
            except OSError:
                socks.remove(s)
                s.close()
        time.sleep(0.5)
    for s in socks:
        s.close()


NICE = 19
ATTACKS = [(failed_logins, "127.0.0.2"), (tls_handshakes, "127.0.0.3"),
           (tls_garbage, "127.0.0.4"), (dribblers, "127.0.0.5")]


# -- measuring -------------------------------------------------------------------

def measure(port, n):
    lat = []
    with Line("127.0.0.1", port, timeout=10) as c:
        for _ in range(20):  # warm up
            c.ask("GET VAR %s ups.status" % UPS)
        for _ in range(n):
            t = time.perf_counter()
            r = c.ask("GET VAR %s ups.status" % UPS)
            lat.append(time.perf_counter() - t)
            if not r.startswith("VAR "):
                raise SystemExit("port %d: unexpected reply %r" % (port, r))
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def attacker(fn, port, src, stop):
    # A real attacker runs on another host; here it shares this machine's
    # CPUs with the server and the measuring client, so it yields to them
    # (the same for both servers) and the latency measured is the server's.
    if NICE:
        os.nice(NICE)
    fn(port, src, stop)


def run_case(name, port, n, seconds):
    idle = measure(port, n)
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=attacker, args=(fn, port, src, stop), daemon=True)
             for fn, src in ATTACKS]
    for p in procs:
        p.start()
    time.sleep(seconds)  # let the attack reach its steady state
    attacked = measure(port, n)
    stop.set()
    for p in procs:
        p.join(10)
    return name, idle, attacked


def wait_for(port, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with Line("127.0.0.1", port, timeout=2) as c:
                if c.ask("GET VAR %s ups.status" % UPS).startswith("VAR"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server on port %d not ready" % port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=2.0, help="attack warm-up")
    ap.add_argument("--attack", action="append", choices=[fn.__name__ for fn, _ in ATTACKS],
                    help="run only these attacks (default: all at once)")
    ap.add_argument("--same-priority", action="store_true",
                    help="attackers compete for the CPUs at the server's priority")
    args = ap.parse_args()
    global NICE
    if args.same_priority:
        NICE = 0
    if args.attack:
        ATTACKS[:] = [(fn, src) for fn, src in ATTACKS if fn.__name__ in args.attack]
    if os.getuid() != 0 or not shutil.which("certutil"):
        raise SystemExit("run as root with libnss3-tools and nut-server installed")
    base = make_base("nutsec-bench-")
    ca = make_ca()
    leaf = issue(ca, "ups.test", sans=["ups.test", "127.0.0.1"])
    os.makedirs(os.path.join(base, "ours"))
    os.chmod(os.path.join(base, "ours"), 0o755)
    ours = Stack(os.path.join(base, "ours"), users=USERS)
    certfile = write_certfile(os.path.join(ours.etc, "upsd.pem"), leaf)
    ours.put("upsd.conf", "LISTEN 127.0.0.1 %d\nCERTFILE %s\n" % (ours.port, certfile))
    db = nss_server_db(os.path.join(base, "nssdb"), ca, leaf, "ups.test")
    theirs = DebianStack(os.path.join(base, "debian"), free_port(),
                         'CERTPATH %s\nCERTIDENT "ups.test" ""\n' % db, USERS)
    results = []
    try:
        ours.start()
        theirs.start()
        wait_for(theirs.port)
        results.append(run_case("nutapp upsd", ours.port, args.requests, args.seconds))
        results.append(run_case("Debian upsd 2.8.0", theirs.port, args.requests,
                                args.seconds))
    finally:
        ours.stop()
        theirs.stop()
        cleanup(base)
    print("| server | idle median | idle p99 | attack median | attack p99 | "
          "median ratio | p99 ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, (im, ip), (am, ap_) in results:
        print("| %s | %.3f ms | %.3f ms | %.3f ms | %.3f ms | %.2fx | %.2fx |"
              % (name, im * 1e3, ip * 1e3, am * 1e3, ap_ * 1e3, am / im, ap_ / ip))


if __name__ == "__main__":
    main()
