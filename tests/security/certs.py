"""Test certificates made with `cryptography`: CAs, servers, clients.

ECDSA P-256 and RSA-2048 only: what NUT's NSS-built clients accept too.
"""

import datetime
import ipaddress
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stack import secure

NOW = datetime.datetime.now(datetime.timezone.utc)


def new_key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


class Cert:
    def __init__(self, key, cert, issuer=None):
        self.key = key
        self.cert = cert
        self.issuer = issuer

    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password=None):
        enc = (serialization.BestAvailableEncryption(password.encode()) if password
               else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8, enc)

    def chain_pem(self):
        """This certificate then its issuers up to (not including) the root."""
        out = self.pem()
        i = self.issuer
        while i is not None and i.issuer is not None:
            out += i.pem()
            i = i.issuer
        return out


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nutapp tests")])


def make_ca(cn="nutapp test CA", kind="ec", issuer=None):
    key = new_key(kind)
    b = (x509.CertificateBuilder().subject_name(_name(cn))
         .issuer_name(issuer.cert.subject if issuer else _name(cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - datetime.timedelta(days=1))
         .not_valid_after(NOW + datetime.timedelta(days=365))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                      False, False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False))
    signer = issuer.key if issuer else key
    return Cert(key, b.sign(signer, hashes.SHA256()), issuer)


def issue(ca, cn, sans=None, kind="ec", client=False, not_before=None, not_after=None):
    key = new_key(kind)
    sans = list(sans if sans is not None else [cn])
    alt = []
    for s in sans:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(s)))
        except ValueError:
            alt.append(x509.DNSName(s))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
         .not_valid_after(not_after or NOW + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             ca.key.public_key()), critical=False))
    if alt:
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Cert(key, b.sign(ca.key, hashes.SHA256()), ca)


def write_certfile(path, leaf, password=None, mode=0o640):
    """upsd's CERTFILE: the chain, then the key."""
    with open(path, "wb") as f:
        f.write(leaf.chain_pem() + leaf.key_pem(password))
    secure(path, mode)
    return path


def write_pem(path, *certs):
    with open(path, "wb") as f:
        for c in certs:
            f.write(c.pem())
    os.chmod(path, 0o644)
    return path


def hash_dir(path, *cas):
    """The security chapter's CERTPATH: <hash>.0 files named by
    `openssl x509 -hash`."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    for ca in cas:
        tmp = os.path.join(path, "tmp.pem")
        write_pem(tmp, ca)
        h = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", tmp],
                           capture_output=True, text=True, check=True).stdout.strip()
        n = 0
        while os.path.exists(os.path.join(path, "%s.%d" % (h, n))):
            n += 1
        os.rename(tmp, os.path.join(path, "%s.%d" % (h, n)))
    return path
