"""Home Assistant's NUT integration against our upsd.

Home Assistant talks to NUT servers through `aionut` (PyPI), a plaintext
client with one persistent connection that sends USERNAME and PASSWORD at
connect time when they are configured. These tests drive that very library
the way the integration does (LIST UPS, GET UPSDESC, LIST VAR, LIST CMD,
INSTCMD) and hold our stack to what the same calls return from Debian's C
stack serving the same dump.
"""

import asyncio
import datetime
import os
import signal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nutstack import APC_DUMP, Stack, have_debian_nut

aionut = pytest.importorskip("aionut", reason="aionut is a test extra: ./build.sh installs it")

UPS = {"dummy": (APC_DUMP, '\tdesc = "Rack UPS in the study"\n')}


def self_signed_certfile(name):
    """A CERTFILE (certificate, then key) for a server called `name`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))


def run(coro):
    return asyncio.run(coro)


async def what_home_assistant_sees(port, username=None, password=None):
    """The calls of the integration's set-up and of one update, in its order."""
    client = aionut.AIONUTClient("127.0.0.1", port, username, password, timeout=5)
    try:
        upses = await client.list_ups()
        seen = {"upses": upses}
        for name in sorted(upses):
            seen[name] = {
                "description": await client.description(name),
                "vars": await client.list_vars(name),
                "commands": sorted(await client.list_commands(name)),
            }
        return seen
    finally:
        client.shutdown()


def test_home_assistant_sees_what_nut_c_shows(tmp_path):
    if not have_debian_nut():
        pytest.skip("Debian's nut-server is not installed (./build.sh installs it)")
    seen = {}
    for kind in ("debian", "ours"):
        with Stack(tmp_path / kind, ups=UPS) as s:
            s.start(server=kind, drivers=kind)
            seen[kind] = run(what_home_assistant_sees(s.port))
    ours, theirs = seen["ours"], seen["debian"]
    assert ours["upses"] == {"dummy": "Rack UPS in the study"}
    assert ours["dummy"]["vars"]["ups.status"] == "OL DISCHRG"
    assert "load.off" in ours["dummy"]["commands"]
    assert ours == theirs


def test_commands_with_credentials(tmp_path):
    async def scenario(port):
        admin = aionut.AIONUTClient("127.0.0.1", port, "admin", "adminpass", timeout=5)
        viewer = aionut.AIONUTClient("127.0.0.1", port, "viewer", "viewerpass", timeout=5)
        wrong = aionut.AIONUTClient("127.0.0.1", port, "admin", "not-the-password", timeout=5)
        try:
            # NUT checks the password when it is used, so both are refused
            # at INSTCMD, which the integration takes as "reauthenticate".
            for client in (viewer, wrong):
                with pytest.raises(aionut.NUTLoginError, match="ERR ACCESS-DENIED"):
                    await client.run_command("dummy", "load.off")
                assert (await client.list_vars("dummy"))["ups.status"] == "OL DISCHRG"
            assert await admin.run_command("dummy", "load.off") == "OK"
            for _ in range(50):
                if (await viewer.list_vars("dummy"))["ups.status"] == "OFF":
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("load.off not reflected in ups.status")
            with pytest.raises(aionut.NUTCommandError, match="ERR CMD-NOT-SUPPORTED"):
                await admin.run_command("dummy", "no.such.command")
        finally:
            for c in (admin, viewer, wrong):
                c.shutdown()

    with Stack(tmp_path, ups=UPS) as s:
        s.start()
        run(scenario(s.port))


def test_persistent_connection_survives_reload(tmp_path):
    """The integration keeps one connection open: SIGHUP must not drop it."""

    async def scenario(s, upsd):
        client = aionut.AIONUTClient("127.0.0.1", s.port, timeout=5)
        try:
            before = await client.list_vars("dummy")
            writer = client._writer  # the one connection aionut holds
            s.write("ups.conf", (s.conf / "ups.conf").read_text()
                    .replace("Rack UPS in the study", "Moved to the hall"))
            s.fix_modes()
            os.kill(upsd.pid, signal.SIGHUP)
            for _ in range(50):
                if await client.description("dummy") == "Moved to the hall":
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("reloaded description never seen\n" + s.log_text())
            assert await client.list_vars("dummy") == before
            assert client._writer is writer, "the connection was dropped and remade"
        finally:
            client.shutdown()

    with Stack(tmp_path, ups=UPS) as s:
        s.start_drivers()
        upsd = s.start_upsd()
        s.wait_ready()
        run(scenario(s, upsd))


def test_require_tls_refuses_its_password_but_not_reading(tmp_path):
    """aionut speaks no TLS: with REQUIRE_TLS, Home Assistant must read
    without a user name, and one configured anyway gets the login error the
    integration turns into "reauthentication needed" (SECURITY.md)."""
    async def scenario(port):
        reader = aionut.AIONUTClient("127.0.0.1", port, timeout=5)
        with_login = aionut.AIONUTClient("127.0.0.1", port, "admin", "adminpass", timeout=5)
        try:
            assert (await reader.list_vars("dummy"))["ups.status"] == "OL DISCHRG"
            with pytest.raises(aionut.NUTLoginError, match="ERR ACCESS-DENIED"):
                await with_login.list_ups()
        finally:
            reader.shutdown()
            with_login.shutdown()

    with Stack(tmp_path, ups=UPS) as s:
        certfile = s.conf / "upsd.pem"
        certfile.write_bytes(self_signed_certfile("localhost"))
        conf = "CERTFILE %s\nREQUIRE_TLS 1\n" % certfile
        s.write("upsd.conf", (s.conf / "upsd.conf").read_text() + conf)
        s.fix_modes()
        s.start()
        run(scenario(s.port))
