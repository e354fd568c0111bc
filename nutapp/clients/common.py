"""What the command-line clients share: connecting and reporting errors."""

import os
import sys

from nutapp.clients.client import (ConnectionFailed, NutClient, ServerError,
                                   parse_ups_spec)
from nutapp.core.errors import NutError


def client_tls():
    """TLS settings for the command-line clients, from the environment.

    NUT_CERTPATH, NUT_CERTVERIFY, NUT_FORCESSL, NUT_CERTHOST
    ("host=name" entries separated by commas), NUT_CERTFILE/NUT_KEYFILE
    for a client certificate. None when nothing asks for TLS.
    """
    env = os.environ
    keys = ("NUT_CERTPATH", "NUT_CERTVERIFY", "NUT_FORCESSL", "NUT_CERTHOST", "NUT_CERTFILE")
    if not any(env.get(k) for k in keys):
        return None
    from nutapp.clients.tls import ClientTls

    hosts = {}
    for item in filter(None, (env.get("NUT_CERTHOST") or "").split(",")):
        host, _, name = item.partition("=")
        hosts[host.strip()] = (name.strip() or host.strip(),
                               env.get("NUT_CERTVERIFY") == "1", env.get("NUT_FORCESSL") == "1")
    return ClientTls(certpath=env.get("NUT_CERTPATH"),
                     certverify=env.get("NUT_CERTVERIFY") == "1",
                     forcessl=env.get("NUT_FORCESSL") == "1", certhosts=hosts,
                     certfile=env.get("NUT_CERTFILE"), keyfile=env.get("NUT_KEYFILE"))


def connect(spec, need_ups=True):
    ups, host, port = parse_ups_spec(spec)
    if need_ups and not ups:
        fail("Error: invalid UPS definition.\nRequired format: upsname[@hostname[:port]]")
    c = NutClient(host, port, tls=client_tls())
    try:
        c.connect()
    except NutError as e:
        fail("Error: %s" % e)
    return ups, c


def fail(msg, code=1):
    sys.stderr.write(msg + "\n")
    raise SystemExit(code)


def run(fn):
    """Call fn(), turning expected errors into NUT-style one-line messages."""
    try:
        return fn() or 0
    except ServerError as e:
        sys.stderr.write("Error: %s\n" % e)
        return 1
    except (ConnectionFailed, NutError) as e:
        sys.stderr.write("Error: %s\n" % e)
        return 1
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
