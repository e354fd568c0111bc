"""TLS for NUT clients: STARTTLS, certificate verification, forced TLS.

Settings follow upsmon.conf: CERTPATH (a directory of ``<hash>.0`` files or a
CA bundle), CERTVERIFY (check the server's certificate), FORCESSL (refuse to
go on in plaintext), CERTHOST (per host: expected certificate name, verify
and force flags), and a client certificate and key for servers that ask
for one. Refusals name the cause (wrong name, expired, unknown CA).
"""

import os
import ssl

from nutapp.core.errors import NutError


class TlsError(NutError):
    pass


class ClientTls:
    def __init__(self, certpath=None, certverify=False, forcessl=False, certhosts=None,
                 certfile=None, keyfile=None, keypass=None):
        self.certpath = certpath
        self.certverify = certverify
        self.forcessl = forcessl
        self.certhosts = certhosts or {}  # "host" or "host:port" -> (name, verify, force)
        self.certfile = certfile
        self.keyfile = keyfile
        self.keypass = keypass

    def policy(self, host, port):
        """(expected name, verify, force) for a server."""
        for key in ("%s:%d" % (host, port), host):
            if key in self.certhosts:
                return self.certhosts[key]
        return host, self.certverify, self.forcessl

    def context(self, verify):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if verify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = True
            if not self.certpath:
                raise TlsError("CERTVERIFY is on but no CERTPATH is set")
            try:
                if os.path.isdir(self.certpath):
                    ctx.load_verify_locations(capath=self.certpath)
                else:
                    ctx.load_verify_locations(cafile=self.certpath)
            except (OSError, ssl.SSLError) as e:
                raise TlsError("can't load CERTPATH %s: %s" % (self.certpath, e))
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.certfile:
            try:
                ctx.load_cert_chain(self.certfile, self.keyfile, password=self.keypass)
            except (OSError, ssl.SSLError) as e:
                raise TlsError("can't load client certificate %s: %s" % (self.certfile, e))
        return ctx

    def negotiate(self, client):
        """Run STARTTLS on a connected NutClient, per this host's policy."""
        from nutapp.clients.client import ServerError

        name, verify, force = self.policy(client.host, client.port)
        ctx = self.context(verify)  # fail on bad local settings before talking
        try:
            client.query("STARTTLS")
        except ServerError as e:
            if force or verify:
                raise TlsError("server %s does not offer TLS (%s) and %s requires it"
                               % (client.host, e.word, "CERTVERIFY" if verify else "FORCESSL"))
            return False
        try:
            client.sock = ctx.wrap_socket(client.sock, server_hostname=name if verify else None)
        except ssl.SSLCertVerificationError as e:
            raise TlsError("certificate of %s refused: %s" % (client.host, describe(e)))
        except (ssl.SSLError, OSError) as e:
            raise TlsError("TLS handshake with %s failed: %s" % (client.host, e))
        client.is_tls = True
        return True


def describe(e):
    """Say why a certificate was refused, in words a person acts on."""
    msg = getattr(e, "verify_message", "") or str(e)
    code = getattr(e, "verify_code", None)
    if code == 10:
        return "certificate has expired (%s)" % msg
    if code in (18, 19, 20, 21):
        return "certificate is not signed by a CA in CERTPATH (%s)" % msg
    if code == 62 or "Hostname mismatch" in msg or "IP address mismatch" in msg:
        return "certificate name does not match the expected name (%s)" % msg
    return msg
