"""nutapp nut-scanner on the fake USB bus."""

import pytest

from nutapp.drivers import scanner

from .fakeusb import FakeUps, FakeBus


@pytest.fixture
def bus(monkeypatch):
    b = FakeBus(FakeUps("apc-back-ups-es-850g2.ups", address=5),
                FakeUps("eaton-5sc-750.ups", address=8))
    monkeypatch.setattr(scanner, "BACKEND", b)
    return b


def test_ups_conf_sections(bus, capsys):
    assert scanner.main(["-U", "-q"], prog="nut-scanner") == 0
    out = capsys.readouterr().out
    assert out == (
        '[nutdev-usb1]\n'
        '\tdriver = "usbhid-ups"\n'
        '\tport = "auto"\n'
        '\tvendorid = "051D"\n'
        '\tproductid = "0002"\n'
        '\tproduct = "Back-UPS ES 850G2 FW:938.a2 .I USB FW:a2"\n'
        '\tserial = "5B2250T99999"\n'
        '\tvendor = "American Power Conversion"\n'
        '\tbus = "001"\n'
        '\t# device = "005"\n'
        '\t# busport = "001"\n'
        '[nutdev-usb2]\n'
        '\tdriver = "usbhid-ups"\n'
        '\tport = "auto"\n'
        '\tvendorid = "0463"\n'
        '\tproductid = "FFFF"\n'
        '\tproduct = "Eaton 5SC 750"\n'
        '\tserial = "G132D23006"\n'
        '\tvendor = "EATON"\n'
        '\tbus = "001"\n'
        '\t# device = "008"\n'
        '\t# busport = "001"\n')


def test_parsable_output(bus, capsys):
    assert scanner.main(["-U", "-P"], prog="nut-scanner") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('USB:driver="usbhid-ups",port="auto",vendorid="051D",')
    assert len(lines) == 2 and "device=" not in lines[0]


def test_sections_work_as_ups_conf_options(bus, capsys):
    # what the scanner prints must find that same UPS again in the driver
    import asyncio
    from nutapp.core.dstate import DriverState
    from nutapp.drivers.usbhid.driver import UsbHidUps

    scanner.main(["-U", "-q"], prog="nut-scanner")
    section = capsys.readouterr().out.split("[nutdev-usb2]")[1]
    options = {}
    for line in section.strip().splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        k, _, v = line.partition(" = ")
        options[k] = v.strip('"')
    cls = type("FakeBusUsbHidUps", (UsbHidUps,), {"backend": bus})
    ds = DriverState()
    d = cls("ups", options, ds)

    async def go():
        await d.open()
        await d.close()

    asyncio.run(go())
    assert ds.getinfo("ups.model") == "Eaton 5SC 750"


def test_no_ups_found(monkeypatch, capsys):
    monkeypatch.setattr(scanner, "BACKEND", FakeBus())
    assert scanner.main(["-U", "-q"], prog="nut-scanner") == 0
    assert capsys.readouterr().out == ""


def test_other_scans_are_refused(capsys):
    assert scanner.main(["-S"], prog="nut-scanner") == 1
    assert "only USB" in capsys.readouterr().err
