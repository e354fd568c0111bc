"""What the command-line clients share: connecting and reporting errors."""

import os
import sys

from nutapp.clients.client import (ConnectionFailed, NutClient, ServerError,
                                   parse_ups_spec)
from nutapp import paths
from nutapp.core.errors import NutError, ParseError
from nutapp.core.parseconf import parse_text


def client_tls():
    """TLS settings for upsc, upscmd and upsrw; None when nothing asks for TLS.

    First the CERT* lines of a client configuration file: the file named by
    NUT_CLIENTCONF, else upsmon.conf in NUT_CONFPATH when this user can read
    it (so the tools follow the policy upsmon follows). Then the
    environment, which wins: NUT_CERTPATH, NUT_CERTVERIFY (0/1),
    NUT_FORCESSL (0/1), NUT_CERTFILE and NUT_KEYFILE (client certificate;
    NUT_KEYFILE only when the key is in a separate file), and NUT_CERTHOST:
    entries ``host[:port]=name[:verify[:force]]`` separated by commas.
    """
    from nutapp.clients.tls import ClientTls, TlsError

    env = os.environ
    tls = ClientTls()
    conffile = env.get("NUT_CLIENTCONF")
    if conffile or os.access(paths.conffile("upsmon.conf"), os.R_OK):
        conffile = conffile or paths.conffile("upsmon.conf")
        try:
            with open(conffile, "rb") as f:
                lines = parse_text(f.read().decode("utf-8", "replace"))
        except (OSError, ParseError) as e:
            raise TlsError("can't read TLS settings from %s: %s" % (conffile, e))
        tls = ClientTls.from_conf(lines)
    if env.get("NUT_CERTPATH"):
        tls.certpath = env["NUT_CERTPATH"]
    for key, attr in (("NUT_CERTVERIFY", "certverify"), ("NUT_FORCESSL", "forcessl")):
        if env.get(key):
            setattr(tls, attr, env[key].strip().lower() in ("1", "yes", "true", "on"))
    if env.get("NUT_CERTFILE"):
        tls.certfile = env["NUT_CERTFILE"]
        tls.keyfile = env.get("NUT_KEYFILE") or None
    for item in filter(None, (env.get("NUT_CERTHOST") or "").split(",")):
        host, _, rest = item.partition("=")
        fields = rest.split(":")
        flags = [f.strip() in ("1", "yes") if f.strip() else None for f in fields[1:3]]
        flags += [None] * (2 - len(flags))
        tls.certhosts[host.strip()] = ((fields[0].strip() or host.strip()), flags[0], flags[1])
    return tls if tls.wanted else None


def connect(spec, need_ups=True):
    ups, host, port = parse_ups_spec(spec)
    if need_ups and not ups:
        fail("Error: invalid UPS definition.\nRequired format: upsname[@hostname[:port]]")
    try:
        c = NutClient(host, port, tls=client_tls())
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
