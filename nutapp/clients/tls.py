"""TLS for NUT clients: STARTTLS, certificate verification, forced TLS.

Settings follow upsmon.conf: CERTPATH (a directory of ``<hash>.0`` files as
`openssl x509 -hash` names them, or a CA bundle), CERTVERIFY (check the
server's certificate), FORCESSL (refuse to go on in plaintext), CERTHOST
(per host: expected certificate name, verify and force flags), and CERTFILE
(a PEM client certificate then its key; CERTIDENT's second word is the key's
password) for servers that ask for one. `from_conf` reads those lines;
`nutapp.clients.common.client_tls` adds the environment.

Refusals name the cause: wrong name, expired certificate, unknown CA, a
server without TLS while TLS is required. Nothing falls back to plaintext
once verification or FORCESSL is asked for.
"""

import os
import re
import ssl

from nutapp.core.errors import NutError

_HASH_NAME = re.compile(r"^[0-9a-f]{8}\.r?[0-9]+$")


class TlsError(NutError):
    pass


def load_ca_path(ctx, path):
    """Trust the CAs in `path`: a <hash>.0 directory (plus any *.pem/*.crt
    in it) or a PEM bundle. Raises TlsError naming what is wrong."""
    if not os.path.exists(path):
        raise TlsError("CERTPATH %s: no such file or directory" % path)
    try:
        if not os.path.isdir(path):
            ctx.load_verify_locations(cafile=path)
            return
        names = os.listdir(path)
        hashed = [n for n in names if _HASH_NAME.match(n)]
        loose = [n for n in names if n.endswith((".pem", ".crt")) and n not in hashed]
        if hashed:
            ctx.load_verify_locations(capath=path)
        for n in sorted(loose):
            ctx.load_verify_locations(cafile=os.path.join(path, n))
    except PermissionError:
        raise TlsError("CERTPATH %s: permission denied" % path)
    except (OSError, ssl.SSLError) as e:
        raise TlsError("CERTPATH %s: can't load CA certificates: %s" % (path, e))
    if hashed or loose:
        return
    if any(n in names for n in ("cert9.db", "cert8.db")):
        raise TlsError("CERTPATH %s is an NSS database; nutapp needs PEM: a directory of "
                       "<hash>.0 files or a CA bundle (export one with `certutil -L -d "
                       "sql:%s -n <name> -a > ca.pem`)" % (path, path))
    raise TlsError("CERTPATH %s holds no CA certificates (<hash>.0 files from "
                   "`openssl x509 -hash -noout -in ca.pem`, or *.pem)" % path)


def _flag(word):
    return word.strip().lower() in ("1", "yes", "true", "on")


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

    @classmethod
    def from_conf(cls, lines):
        """Settings from upsmon.conf-style (lineno, words) lines; other
        directives are ignored."""
        tls = cls()
        for _, words in lines:
            key = words[0].upper()
            args = words[1:]
            if key == "CERTPATH" and args:
                tls.certpath = args[0]
            elif key == "CERTVERIFY" and args:
                tls.certverify = _flag(args[0])
            elif key == "FORCESSL" and args:
                tls.forcessl = _flag(args[0])
            elif key == "CERTFILE" and args:
                tls.certfile = args[0]
            elif key == "CERTIDENT" and len(args) >= 2:
                tls.keypass = args[1]
            elif key == "CERTHOST" and len(args) >= 2:
                verify = _flag(args[2]) if len(args) > 2 else None
                force = _flag(args[3]) if len(args) > 3 else None
                tls.certhosts[args[0]] = (args[1], verify, force)
        return tls

    @property
    def wanted(self):
        """Whether anything asks for TLS at all."""
        return bool(self.certpath or self.certverify or self.forcessl or self.certhosts
                    or self.certfile)

    def policy(self, host, port):
        """(expected name, verify, force) for a server."""
        for key in ("%s:%d" % (host, port), host):
            if key in self.certhosts:
                name, verify, force = self.certhosts[key]
                return (name,
                        self.certverify if verify is None else verify,
                        self.forcessl if force is None else force)
        return host, self.certverify, self.forcessl

    def context(self, verify):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if verify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = True
            if not self.certpath:
                raise TlsError("CERTVERIFY is on but no CERTPATH is set (the CA "
                               "certificates to check the server against)")
            load_ca_path(ctx, self.certpath)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.certfile:
            try:
                ctx.load_cert_chain(self.certfile, self.keyfile, password=self.keypass or "")
            except (OSError, ssl.SSLError) as e:
                raise TlsError("can't load client certificate %s: %s" % (self.certfile, e))
        return ctx

    def negotiate(self, client):
        """Run STARTTLS on a connected NutClient, per this host's policy.

        Returns True when the session is now encrypted, False when the
        server has no TLS and the policy allows plaintext.
        """
        from nutapp.clients.client import ServerError

        name, verify, force = self.policy(client.host, client.port)
        ctx = self.context(verify)  # fail on bad local settings before talking
        try:
            reply = client.query("STARTTLS")
        except ServerError as e:
            if force or verify:
                raise TlsError("server %s does not offer TLS (%s) and %s requires it"
                               % (client.host, e.word,
                                  "CERTVERIFY" if verify else "FORCESSL"))
            return False
        if reply != "OK STARTTLS":
            raise TlsError("server %s answered %r to STARTTLS" % (client.host, reply[:80]))
        if client.buf:
            # Bytes after OK STARTTLS but before the handshake: not ours to read.
            raise TlsError("server %s sent data after OK STARTTLS" % client.host)
        try:
            client.sock = ctx.wrap_socket(client.sock, server_hostname=name if verify else None)
        except ssl.SSLCertVerificationError as e:
            raise TlsError("certificate of %s refused: %s" % (client.host, describe(e, name)))
        except (ssl.SSLError, OSError) as e:
            raise TlsError("TLS handshake with %s failed: %s"
                           % (client.host, getattr(e, "reason", None) or e))
        client.is_tls = True
        return True


def describe(e, name=None):
    """Say why a certificate was refused, in words a person acts on."""
    msg = getattr(e, "verify_message", "") or str(e)
    code = getattr(e, "verify_code", None)
    if code == 10:
        return "certificate has expired (%s)" % msg
    if code == 9:
        return "certificate is not yet valid (%s)" % msg
    if code in (2, 18, 19, 20, 21):
        return "certificate is not signed by a CA in CERTPATH (%s)" % msg
    if code == 62 or "Hostname mismatch" in msg or "IP address mismatch" in msg:
        return "certificate name does not match the expected name %s (%s)" % (
            "%r" % name if name else "", msg)
    return msg
