"""TLS for upsd (OpenSSL through Python's ssl module).

CERTFILE is a PEM file holding the certificate chain then the key, as NUT's
OpenSSL backend expects; CERTIDENT gives the name the certificate must carry
and the key's password; CERTREQUEST asks clients for certificates validated
against CERTPATH (a CA directory of <hash>.0 files, or a bundle). Any TLS
setting that cannot be honoured stops the server: it never falls back to
plaintext.
"""

import os
import ssl


class TlsSetupError(SystemExit):
    pass


def server_context(conf, log):
    """An SSLContext for STARTTLS, or None when no CERTFILE is configured."""
    if not conf.certfile:
        if conf.certrequest or conf.certident:
            raise TlsSetupError("CERTREQUEST/CERTIDENT are set but CERTFILE is not")
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
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!MD5:!DSS")
    password = conf.certident[1] if conf.certident and conf.certident[1] else None
    try:
        ctx.load_cert_chain(conf.certfile, password=password)
    except FileNotFoundError:
        raise TlsSetupError("CERTFILE %s: no such file" % conf.certfile)
    except PermissionError:
        raise TlsSetupError("CERTFILE %s: permission denied (the upsd user must be able "
                            "to read it: chown root:nut, chmod 0640)" % conf.certfile)
    except ssl.SSLError as e:
        raise TlsSetupError("CERTFILE %s: can't load certificate and key (%s); it must "
                            "hold the certificate chain then the private key in PEM, "
                            "and CERTIDENT the key's password if it has one"
                            % (conf.certfile, e.reason or e))
    if conf.certident and conf.certident[0]:
        _check_ident(conf.certfile, conf.certident[0])
    if conf.certrequest:
        if not conf.certpath:
            raise TlsSetupError("CERTREQUEST needs CERTPATH (the CAs that sign client "
                                "certificates)")
        try:
            if os.path.isdir(conf.certpath):
                ctx.load_verify_locations(capath=conf.certpath)
            else:
                ctx.load_verify_locations(cafile=conf.certpath)
        except (OSError, ssl.SSLError) as e:
            raise TlsSetupError("CERTPATH %s: %s" % (conf.certpath, e))
        ctx.verify_mode = ssl.CERT_REQUIRED if conf.certrequest == 2 else ssl.CERT_OPTIONAL
    log.info("TLS available (STARTTLS), certificate %s%s", conf.certfile,
             ", client certificates %s" % ("required" if conf.certrequest == 2
                                            else "requested") if conf.certrequest else "")
    return ctx


def _check_ident(certfile, name):
    """CERTIDENT's name must be the certificate's CN or one of its SANs."""
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID
    except ImportError:
        return
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
    if name not in names:
        raise TlsSetupError("CERTIDENT %r does not match the certificate in %s (it names %s)"
                            % (name, certfile, ", ".join(names) or "nothing"))
