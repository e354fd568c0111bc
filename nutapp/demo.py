"""`./build.sh demo`: upsd and a simulated UPS on localhost, in the foreground.

Writes a throw-away configuration (out/demo/) serving a real device's dump
through dummy-ups, starts the drivers and upsd with the same privilege
separation the appliance uses when run as root, prints how to query it, and
stops everything cleanly on Ctrl-C.
"""

import grp
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUMP = os.path.join(HERE, "tests", "data", "nut-ddl",
                    "APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev")


def _free_port(preferred=3493):
    for port in (preferred, 13493, 0):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("no free port on 127.0.0.1")


def write_config(base, port):
    conf = os.path.join(base, "etc")
    state = os.path.join(base, "state")
    for d in (conf, state):
        os.makedirs(d, exist_ok=True)
    shutil.copy(DUMP, os.path.join(conf, "demo.dev"))
    files = {
        "ups.conf": '[demo]\n\tdriver = dummy-ups\n\tport = demo.dev\n'
                    '\tdesc = "APC Back-UPS BK650M2-CH (simulated from a real dump)"\n',
        "upsd.conf": "LISTEN 127.0.0.1 %d\nLISTEN ::1 %d\nALLOW_NOT_ALL_LISTENERS 1\n"
                     % (port, port),
        "upsd.users": "[admin]\n\tpassword = demo\n\tactions = SET FSD\n\tinstcmds = ALL\n\n"
                      "[monuser]\n\tpassword = demo\n\tupsmon primary\n",
    }
    for name, text in files.items():
        with open(os.path.join(conf, name), "w") as f:
            f.write(text)
    user = None
    if os.getuid() == 0:
        try:
            gid = grp.getgrnam("nut").gr_gid
            user = "nut"
        except KeyError:
            gid = None
        if gid is not None:
            for name in os.listdir(conf):
                os.chown(os.path.join(conf, name), 0, gid)
                os.chmod(os.path.join(conf, name), 0o640)
            os.chown(conf, 0, gid)
            os.chmod(conf, 0o750)
            os.chown(state, 0, gid)
            os.chmod(state, 0o770)
    return conf, state, user


def wait_serving(port, procs, stop, timeout=30.0):
    """None once upsd answers for the UPS, else why not."""
    from nutapp.clients.client import NutClient
    from nutapp.core.errors import NutError

    end = time.monotonic() + timeout
    why = "no answer within %d s" % timeout
    while time.monotonic() < end:
        if stop:
            return "interrupted"
        if any(p.poll() is not None for p in procs):
            return "a component exited"
        try:
            with NutClient("127.0.0.1", port, timeout=2) as c:
                c.get_var("demo", "ups.status")
                return None
        except (NutError, OSError) as e:
            why = str(e) or type(e).__name__
        time.sleep(0.2)
    return why


def stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    rc = 0
    for p in procs:
        try:
            rc |= p.wait(15) or 0
        except subprocess.TimeoutExpired:
            p.kill()
            rc = 1
    return rc


def main(argv=None):
    base = os.path.join(HERE, "out", "demo")
    port = _free_port()
    conf, state, user = write_config(base, port)
    env = dict(os.environ, NUT_CONFPATH=conf, NUT_STATEPATH=state)
    py = [sys.executable, "-m", "nutapp"]
    # The components run in sessions of their own, so Ctrl-C reaches only
    # this process, which stops them in order.
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    runas = ["-u", user] if user else []
    drivers = subprocess.Popen(py + ["upsdrvctl", "-F"] + runas + ["start"], env=env,
                               start_new_session=True)
    upsd = subprocess.Popen(py + ["upsd", "-F"] + runas, env=env, start_new_session=True)
    host = "localhost" if port == 3493 else "localhost:%d" % port
    problem = wait_serving(port, (upsd, drivers), stop)
    if problem:
        if not stop:
            print("nutapp demo: not serving (%s); stopping" % problem, flush=True)
        rc = stop_all((upsd, drivers))
        print("nutapp demo: stopped", flush=True)
        return rc if stop else 1
    print("""
nutapp demo: upsd on 127.0.0.1 and [::1] port %(port)d, serving UPS "demo".
Try, from another terminal:
    upsc demo@%(host)s                       (Debian's nut-client)
    %(venv)s upsc demo@%(host)s
    %(venv)s upsrw -s ups.status="OB DISCHRG" -u admin -p demo demo@%(host)s
    %(venv)s upscmd -l demo@%(host)s
Configuration in %(conf)s. Ctrl-C stops everything.
""" % {"port": port, "host": host, "conf": conf,
       "venv": os.path.join(os.path.dirname(sys.executable), "nutapp")}, flush=True)
    while not stop:
        if upsd.poll() is not None or drivers.poll() is not None:
            print("nutapp demo: a component exited; stopping", flush=True)
            break
        time.sleep(0.3)
    rc = stop_all((upsd, drivers))
    print("nutapp demo: stopped", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
