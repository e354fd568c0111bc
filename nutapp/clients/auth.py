"""Credentials for upscmd/upsrw: -u/-p, else asked for on the terminal."""

import getpass
import sys


def credentials(user, password):
    if not user:
        try:
            default = getpass.getuser()
        except Exception:
            default = None
        sys.stdout.write("Username (%s): " % default if default else "Username: ")
        sys.stdout.flush()
        user = sys.stdin.readline().strip() or default
        if not user:
            raise SystemExit("No username available")
    if password is None:
        password = getpass.getpass("Password: ")
    return user, password


def wait_tracking(client, tid, timeout):
    """Poll GET TRACKING until the driver answers; the final text."""
    import time

    end = time.monotonic() + timeout
    while True:
        result = client.get_tracking(tid)
        if result != "PENDING":
            return result
        if time.monotonic() > end:
            raise SystemExit("Can't receive status tracking information: timeout")
        time.sleep(1.0)


def run_authenticated(client, args, request):
    """Log in with -u/-p, send `request(client)` (SET or INSTCMD) and report
    as NUT's tools do: the reply on stderr, or with -w the driver's result."""
    user, password = credentials(args.user, args.password)
    client.authenticate(user, password)
    if args.wait:
        client.tracking(True)
    reply = request(client)
    rc = 0
    if args.wait and reply.startswith("OK TRACKING "):
        reply = wait_tracking(client, reply[len("OK TRACKING "):], args.timeout)
        rc = 0 if reply == "SUCCESS" else 1
    sys.stderr.write(reply + "\n")
    client.logout()
    return rc
