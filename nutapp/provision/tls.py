"""The server's TLS certificate: imported, or made on the appliance.

A person may give a certificate (upsd.crt, optionally with its chain) and
its private key (upsd.key), or both in one upsd.pem as NUT's CERTFILE
holds them. They must parse and belong together. When none is given,
provisioning makes an ECDSA P-256 key and a self-signed certificate for
the appliance's names. NSS, which Debian's upsmon uses, accepts P-256
and RSA-2048 certificates but not Ed25519 ones.

The made certificate is valid from 2000 to 9999 (RFC 5280's "no
expiry"): a Pi has no clock battery and may start in 1970, and clients pin
this certificate by its fingerprint, so an expiry date would only break
them.
"""

import datetime
import hashlib
import ipaddress

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


class TlsProblem(Exception):
    """A certificate or key that cannot be used; str() says why."""


def load_certificates(pem):
    """The certificates in PEM bytes, server certificate first."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise TlsProblem("there is no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise TlsProblem("the certificate is damaged (%s)" % e)


def load_private_key(pem):
    """The private key in PEM bytes; refuses encrypted and unsupported keys."""
    if b"PRIVATE KEY-----" not in pem:
        raise TlsProblem("there is no PEM private key (-----BEGIN ... PRIVATE KEY-----) in it")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise TlsProblem("the private key is protected by a passphrase, which the "
                         "appliance cannot type in at start-up")
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TlsProblem("the private key is damaged or of an unknown type (%s)" % e)
    check_key_type(key)
    return key


def check_key_type(key):
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raise TlsProblem("Ed25519/Ed448 keys are refused by NUT's NSS clients")
    if isinstance(key, dsa.DSAPrivateKey):
        raise TlsProblem("DSA keys are not accepted by TLS 1.2+ clients")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise TlsProblem("the RSA key has %d bits; clients want at least 2048" % key.key_size)


def check_key_type_public(cert):
    """Refuse a certificate whose key type NUT's clients cannot use."""
    pub = cert.public_key()
    if isinstance(pub, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        raise TlsProblem("Ed25519/Ed448 certificates are refused by NUT's NSS clients")
    if isinstance(pub, rsa.RSAPublicKey) and pub.key_size < 2048:
        raise TlsProblem("the RSA key has %d bits; clients want at least 2048" % pub.key_size)
    if not isinstance(pub, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise TlsProblem("the certificate's key is neither RSA nor ECDSA")


def key_matches(cert, key):
    """Whether `key` is the private key of `cert`."""
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, pub) == key.public_key().public_bytes(enc, pub)


def split_pem(pem):
    """``(certificate blocks, key block)`` of a combined PEM file (bytes)."""
    certs, key, block, inside = [], None, [], None
    for line in pem.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"-----BEGIN "):
            inside, block = line, [line]
        elif inside is not None:
            block.append(line)
            if line.startswith(b"-----END "):
                text = b"\n".join(block) + b"\n"
                if b"PRIVATE KEY" in inside:
                    key = text
                elif b"CERTIFICATE" in inside:
                    certs.append(text)
                inside = None
    return b"".join(certs), key


def make_key():
    return ec.generate_private_key(ec.SECP256R1())


def make_certificate(key, hostname, addresses=()):
    """A self-signed server certificate for `hostname`, hostname.local and
    the static `addresses`."""
    names = [x509.DNSName(hostname), x509.DNSName(hostname + ".local")]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # No BasicConstraints: NSS then takes this self-signed certificate
        # both as its own trust anchor ("TC,," or "P,,") and as a server
        # certificate; marked CA:TRUE it refuses it for a server ("not
        # approved for application"), marked CA:FALSE it refuses it as an
        # issuer under "TC,,".
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(ski, critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def subject_names(cert):
    """The certificate's DNS and IP subject alternative names, as strings."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName)) | set(
        str(a) for a in san.get_values_for_type(x509.IPAddress))


def wanted_names(hostname, addresses):
    return {hostname, hostname + ".local"} | set(str(a) for a in addresses)


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def fingerprint(cert):
    """SHA-256 of the DER certificate, as AA:BB:... (what browsers and
    ``openssl x509 -fingerprint -sha256`` show)."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)).upper()
