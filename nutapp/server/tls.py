"""TLS for upsd (OpenSSL through Python's ssl module).

CERTFILE is a PEM file holding the certificate chain then the key, as NUT's
OpenSSL backend expects; CERTIDENT gives the name the certificate must carry
and the key's password; CERTREQUEST asks clients for certificates validated
against CERTPATH (a CA directory of <hash>.0 files, or a bundle).

Defaults are strict: TLS 1.2 at least (DISABLE_WEAK_SSL 0 lowers the floor,
with a warning), forward-secret AEAD ciphers only, no compression, no
client-initiated renegotiation. Any TLS setting that cannot be honoured
stops the server with one line saying why: it never falls back to
plaintext.
"""

import ssl

from nutapp.clients.tls import TlsError, load_ca_path

# TLS 1.2 suites; TLS 1.3 has its own fixed, modern list.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!MD5:!DSS:!SHA1"


class TlsSetupError(SystemExit):
    pass


def server_context(conf, log):
    """An SSLContext for STARTTLS, or None when no CERTFILE is configured."""
    if not conf.certfile:
        if conf.certrequest or conf.certident:
            raise TlsSetupError("CERTREQUEST/CERTIDENT are set but CERTFILE is not "
                                "(nutapp reads the certificate and key from CERTFILE)")
        if getattr(conf, "require_tls", False):
            raise TlsSetupError("REQUIRE_TLS is set but CERTFILE is not: no client could "
                                "ever log in")
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if conf.disable_weak_ssl:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        log.warning("DISABLE_WEAK_SSL is off: TLS versions below 1.2 may be negotiated")
        try:
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        except ValueError:
            pass
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                    | getattr(ssl, "OP_NO_RENEGOTIATION", 0))
    ctx.set_ciphers(CIPHERS if conf.disable_weak_ssl else "HIGH:!aNULL:!MD5:!RC4")
    password = conf.certident[1] if conf.certident and conf.certident[1] else None
    _load_certfile(ctx, conf.certfile, password)
    if conf.certident and conf.certident[0]:
        _check_ident(conf.certfile, conf.certident[0])
    if conf.certrequest:
        if not conf.certpath:
            raise TlsSetupError("CERTREQUEST needs CERTPATH (the CAs that sign client "
                                "certificates)")
        try:
            load_ca_path(ctx, conf.certpath)
        except TlsError as e:
            raise TlsSetupError(str(e))
        ctx.verify_mode = ssl.CERT_REQUIRED if conf.certrequest == 2 else ssl.CERT_OPTIONAL
    clients = ""
    if conf.certrequest:
        clients = ", client certificates %s" % (
            "required" if conf.certrequest == 2 else "requested")
    log.info("TLS available (STARTTLS), certificate %s%s", conf.certfile, clients)
    return ctx


def _load_certfile(ctx, certfile, password):
    try:
        ctx.load_cert_chain(certfile, password=password or "")
    except FileNotFoundError:
        raise TlsSetupError("CERTFILE %s: no such file" % certfile)
    except IsADirectoryError:
        raise TlsSetupError("CERTFILE %s is a directory; it must be a PEM file with the "
                            "certificate chain then the private key" % certfile)
    except PermissionError:
        raise TlsSetupError("CERTFILE %s: permission denied (the upsd user must be able "
                            "to read it: chown root:nut %s; chmod 0640 %s)"
                            % (certfile, certfile, certfile))
    except ssl.SSLError as e:
        reason = e.reason or str(e)
        if reason == "KEY_VALUES_MISMATCH":
            why = "the private key does not belong to the certificate"
        elif _key_is_encrypted(certfile):
            why = "the private key is encrypted and CERTIDENT's password does not open it"
        else:
            why = "can't load certificate and key (%s); it must hold the certificate " \
                  "chain then the private key in PEM" % reason
        raise TlsSetupError("CERTFILE %s: %s" % (certfile, why))


def _key_is_encrypted(certfile):
    try:
        with open(certfile, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data


def certificate_names(certfile):
    """The CN and DNS/IP subject alternative names of a PEM file's first
    certificate."""
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID
    except ImportError:
        return _names_without_cryptography(certfile)
    with open(certfile, "rb") as f:
        data = f.read()
    cert = x509.load_pem_x509_certificates(data)[0]
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    return names


def _names_without_cryptography(certfile):
    # The ssl module decodes a PEM certificate only through this private
    # helper; it reads the first certificate of the file.
    info = ssl._ssl._test_decode_cert(certfile)
    names = [v for rdn in info.get("subject", ()) for k, v in rdn if k == "commonName"]
    names += [v for k, v in info.get("subjectAltName", ()) if k in ("DNS", "IP Address")]
    return names


def _check_ident(certfile, name):
    """CERTIDENT's name must be the certificate's CN or one of its SANs."""
    try:
        names = certificate_names(certfile)
    except (OSError, ValueError, ssl.SSLError) as e:
        raise TlsSetupError("CERTFILE %s: can't read the certificate's names: %s"
                            % (certfile, e))
    if name not in names:
        raise TlsSetupError("CERTIDENT %r does not match the certificate in %s (it names %s)"
                            % (name, certfile, ", ".join(names) or "nothing"))
