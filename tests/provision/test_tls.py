"""The server certificate: made on the appliance, or imported; accepted by
NSS (what Debian's upsmon uses); its key never stays on the boot folder."""

import os
import shutil
import ssl
import subprocess
import threading
import socket

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from nutapp.provision import tls

SETTINGS = """\
[system]
hostname = rack-nut

[ethernet]
mode = static
address = 192.168.7.9/24
"""


def installed_pem(box):
    with open(os.path.join(box.etc, "upsd.pem"), "rb") as f:
        return f.read()


def test_made_certificate(box):
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    certs, key_pem = tls.split_pem(installed_pem(box))
    cert = x509.load_pem_x509_certificate(certs)
    key = tls.load_private_key(key_pem)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert tls.key_matches(cert, key)
    assert tls.subject_names(cert) == {"rack-nut", "rack-nut.local", "192.168.7.9"}
    assert cert.not_valid_after_utc.year == 9999
    # The same certificate, public part only, is on the boot folder.
    assert box.boot_text("SERVER-CERTIFICATE.pem").encode() == tls.cert_pem(cert)
    assert "PRIVATE" not in box.boot_text("SERVER-CERTIFICATE.pem")
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                         input=tls.cert_pem(cert), capture_output=True, check=True).stdout
    assert out.decode().strip().split("=", 1)[1] in box.boot_text(
        "SERVER-CERTIFICATE-SHA256.txt")


def test_python_ssl_serves_and_verifies_it(box):
    # The server side is Python's ssl (nutapp's upsd): it must load the
    # combined file, and a client that pins the certificate must accept it
    # for both names.
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(os.path.join(box.etc, "upsd.pem"))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(os.path.join(box.boot, "SERVER-CERTIFICATE.pem"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)

    def serve():
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"OK\n")
            except ssl.SSLError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for name in ("rack-nut.local", "rack-nut"):
        with socket.create_connection(listener.getsockname()) as raw:
            with client.wrap_socket(raw, server_hostname=name) as conn:
                assert conn.recv(3) == b"OK\n"
    thread.join()
    listener.close()


def test_hostname_change_reissues_with_the_same_key(box):
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    first_certs, first_key = tls.split_pem(installed_pem(box))
    assert box.run() == 0  # nothing new: the same certificate
    assert tls.split_pem(installed_pem(box)) == (first_certs, first_key)

    box.put("nutapp.conf", SETTINGS.replace("rack-nut", "shed-nut"))
    assert box.run() == 0
    certs, key = tls.split_pem(installed_pem(box))
    assert key == first_key and certs != first_certs
    assert "shed-nut.local" in tls.subject_names(x509.load_pem_x509_certificate(certs))


@pytest.mark.parametrize("combined", [False, True])
def test_given_certificate_is_imported_and_its_key_removed(box, combined):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = tls.make_certificate(key, "given")
    if combined:
        box.put("upsd.pem", tls.cert_pem(cert) + tls.key_pem(key))
    else:
        box.put("upsd.crt", tls.cert_pem(cert))
        box.put("upsd.key", tls.key_pem(key))
    assert box.run() == 0
    assert installed_pem(box) == tls.cert_pem(cert) + tls.key_pem(key)
    assert not box.has("upsd.key") and not box.has("upsd.pem")
    assert box.boot_text("upsd.crt").encode() == tls.cert_pem(cert)
    assert "removed the private key" in box.boot_text("IMPORTED.txt")
    # Next boot: the certificate alone is still there, its key is installed.
    assert box.run(step_hook=lambda n, what: pytest.fail(what)) == 0
    # A hostname change does not touch a given certificate.
    box.put("nutapp.conf", "[system]\nhostname = other\n")
    assert box.run() == 0
    assert installed_pem(box) == tls.cert_pem(cert) + tls.key_pem(key)


def test_client_ca_turns_on_client_certificates(box):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = tls.make_certificate(ca_key, "clients-ca")
    box.put("client-ca.pem", tls.cert_pem(ca))
    assert box.run() == 0
    upsd = box.etc_text("upsd.conf")
    assert "CERTPATH %s" % os.path.join(os.path.abspath(box.etc), "client-ca.pem") in upsd
    assert "CERTREQUEST 2" in upsd
    assert box.etc_text("client-ca.pem").encode() == tls.cert_pem(ca)


@pytest.mark.skipif(not shutil.which("certutil"), reason="libnss3-tools not installed")
def test_nss_imports_the_made_certificate(box, tmp_path):
    box.put("nutapp.conf", SETTINGS)
    assert box.run() == 0
    db = "sql:" + str(tmp_path / "nssdb")
    os.makedirs(str(tmp_path / "nssdb"))
    subprocess.run(["certutil", "-N", "-d", db, "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", db, "-n", "rack-nut", "-t", "TC,,", "-a", "-i",
                    os.path.join(box.boot, "SERVER-CERTIFICATE.pem")], check=True)
    out = subprocess.run(["certutil", "-L", "-d", db, "-n", "rack-nut"],
                         capture_output=True, text=True, check=True).stdout
    assert "rack-nut.local" in out
    # NSS itself validates it as a server certificate.
    check = subprocess.run(["certutil", "-V", "-d", db, "-n", "rack-nut", "-u", "V"],
                           capture_output=True, text=True)
    assert "certificate is valid" in check.stdout, check.stdout + check.stderr


@pytest.mark.skipif(not shutil.which("certutil"), reason="libnss3-tools not installed")
def test_nss_refuses_ed25519_which_is_why_it_is_not_made(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    # A certificate as a person's own tool would make it.
    key = ed25519.Ed25519PrivateKey.generate()
    import datetime

    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, None))
    path = tmp_path / "ed.pem"
    path.write_bytes(tls.cert_pem(cert))
    db = "sql:" + str(tmp_path / "nssdb")
    os.makedirs(str(tmp_path / "nssdb"))
    subprocess.run(["certutil", "-N", "-d", db, "--empty-password"], check=True)
    result = subprocess.run(["certutil", "-A", "-d", db, "-n", "ed", "-t", "TC,,", "-a",
                             "-i", str(path)], capture_output=True, text=True)
    assert result.returncode != 0
    with pytest.raises(tls.TlsProblem):
        tls.check_key_type_public(cert)
