"""The report descriptor parser against real descriptors and NUT's reading of them."""

import os
import subprocess
import sys

import pytest

from nutapp.drivers.usbhid import hidparser as hp
from nutapp.drivers.usbhid import subdrivers

from .fakeusb import FakeUps

DEVICES = [
    # data file, subdriver whose vendor usage names the log used, descriptor bytes, fields
    ("apc-back-ups-es-850g2.ups", subdrivers.APC, 1049),
    ("cyberpower-cp1500pfclcd.ups", subdrivers.CPS, 439),
    ("eaton-5sc-750.ups", subdrivers.MGE, 1538),
    ("tripplite-09ae-4003.ups", subdrivers.TRIPPLITE, 1028),
]


@pytest.mark.parametrize("name,sub,length", DEVICES)
def test_fields_and_values_match_nut_log(name, sub, length):
    ups = FakeUps(name)
    assert len(ups.descriptor) == length
    desc = hp.parse(ups.descriptor)
    if sub is subdrivers.CPS:
        sub.fix_report_desc(_Dev(ups), desc)
    assert ups.expect, "the data file lists what NUT decoded"
    for path, kind, rid, offset, size, value in ups.expect:
        codes = hp.string_to_path(path, sub.names)
        assert codes is not None, path
        field = desc.find(codes, kind)
        assert field is not None, path
        assert hp.path_to_string(field.path, sub.names) == path
        assert (field.report_id, field.offset, field.size) == (rid, offset, size), path
        data = ups.reports[rid][1:]
        got = field.to_physical(field.extract(data))
        assert got == pytest.approx(value, abs=0.006), path


class _Dev:
    def __init__(self, ups):
        self.vendorid, self.productid = ups.vendorid, ups.productid


def test_apc_report_lengths_count_every_field():
    desc = hp.parse(FakeUps("apc-back-ups-es-850g2.ups").descriptor)
    assert desc.numbered
    # 0x16: 11 one-bit status fields and 21 bits of padding, as the log's "16 0c 00 00 00"
    assert desc.report_length(0x16) == 4
    assert desc.report_length(0x0C, hp.INPUT) == 3


def test_vendor_collection_types_give_index_nodes():
    desc = hp.parse(FakeUps("eaton-5sc-750.ups").descriptor)
    names = [hp.path_to_string(f.path, subdrivers.MGE.names) for f in desc.fields]
    assert "UPS.Flow.[4].ConfigActivePower" in names
    assert "UPS.PowerConverter.Input.[3].PresentStatus.Used" in names


def test_unknown_usages_print_as_hex_and_read_back():
    path = (0x00840004, 0x00000000, 0xFF000055)
    text = hp.path_to_string(path)
    assert text == "UPS.00000000.ff000055"
    assert hp.string_to_path(text) == path
    assert hp.string_to_path("UPS.NoSuchUsage") is None


def _desc(*items):
    return bytes(b for item in items for b in item)


UPS = (0x05, 0x84, 0x09, 0x04, 0xA1, 0x01)
END = (0xC0,)


def test_signed_ranges_and_sign_extension():
    d = hp.parse(_desc(UPS, (0x85, 0x01, 0x75, 0x10, 0x95, 0x01, 0x16, 0xFF, 0xFF,
                             0x26, 0xFF, 0x7F, 0x09, 0x57, 0xB1, 0x02), END))
    f = d.fields[0]
    assert (f.logical_min, f.logical_max) == (-1, 32767)
    assert f.extract(b"\xff\xff") == -1
    assert f.extract(b"\x14\x00") == 20


def test_logical_max_below_min_is_read_unsigned():
    # 0..65535 written as two signed bytes: FF FF is -1, taken as 65535 as NUT does
    d = hp.parse(_desc(UPS, (0x75, 0x10, 0x95, 0x01, 0x15, 0x00, 0x26, 0xFF, 0xFF,
                             0x09, 0x30, 0xB1, 0x02), END))
    f = d.fields[0]
    assert f.logical_max == 65535 and f.logical_max_assumed
    assert f.extract(b"\xe8\x03") == 1000


def test_out_of_range_values_lose_high_bits_then_clamp():
    d = hp.parse(_desc(UPS, (0x75, 0x20, 0x95, 0x01, 0x15, 0x00, 0x27, 0xFF, 0xFF, 0x00,
                             0x00, 0x09, 0x30, 0xB1, 0x02, 0x75, 0x08, 0x25, 0x64, 0x09, 0x35,
                             0xB1, 0x02), END))
    wide, pct = d.fields
    assert wide.extract(bytes([0x00, 0x0A, 0x08, 0x80])) == 0x0A00  # garbage bits dropped
    assert pct.extract(bytes([0, 0, 0, 0, 0x7F])) == 100  # 127 clamped into 0..100


def test_unit_exponent_nibble_and_volt_base():
    # Volts with exponent 5: 1343 reads as 13.43 V; 0x0E is the nibble for -2
    d = hp.parse(_desc(UPS, (0x75, 0x10, 0x95, 0x01, 0x15, 0x00, 0x27, 0xFF, 0xFF, 0x00, 0x00,
                             0x67, 0x21, 0xD1, 0xF0, 0x00, 0x55, 0x05, 0x09, 0x30, 0xB1, 0x02,
                             0x65, 0x00, 0x55, 0x0E, 0x09, 0x31, 0xB1, 0x02), END))
    volt, current = d.fields
    assert volt.to_physical(1343) == pytest.approx(13.43)
    assert current.unit_exponent == -2
    assert current.to_physical(250) == pytest.approx(2.5)
    assert current.to_logical(2.5) == 250
    assert volt.to_logical(13.43) == 1343


def test_physical_range_scaling_both_ways():
    # CyberPower's shutdown delay: logical -1..32767 over physical -60..1966020 (minutes)
    d = hp.parse(_desc(UPS, (0x75, 0x10, 0x95, 0x01, 0x15, 0xFF, 0x26, 0xFF, 0x7F, 0x35, 0xC4,
                             0x47, 0xC4, 0xFF, 0x1D, 0x00, 0x09, 0x57, 0xB1, 0x02), END))
    f = d.fields[0]
    assert f.to_physical(-1) == -60
    assert f.to_physical(2) == 120
    assert f.to_logical(60) == 1
    assert f.to_logical(-60) == -1


def test_usage_range_names_each_field_and_padding_is_skipped():
    d = hp.parse(_desc(UPS, (0x05, 0x85, 0x75, 0x01, 0x95, 0x03, 0x15, 0x00, 0x25, 0x01,
                             0x19, 0x44, 0x29, 0x46, 0x81, 0x02, 0x95, 0x05, 0x81, 0x01,
                             0x09, 0xD0, 0x95, 0x01, 0x81, 0x02), END))
    assert [hp.path_to_string(f.path) for f in d.fields] == \
        ["UPS.Charging", "UPS.Discharging", "UPS.FullyCharged", "UPS.ACPresent"]
    assert d.fields[3].offset == 8
    assert not d.numbered and d.report_length(0, hp.INPUT) == 2


def test_push_and_pop_restore_globals():
    d = hp.parse(_desc(UPS, (0x75, 0x08, 0x95, 0x01, 0x26, 0xFF, 0x00, 0xA4, 0x75, 0x10,
                             0x09, 0x30, 0x81, 0x02, 0xB4, 0x09, 0x35, 0x81, 0x02), END))
    assert [f.size for f in d.fields] == [16, 8]


def test_insert_keeps_neighbouring_bits():
    d = hp.parse(_desc(UPS, (0x75, 0x01, 0x95, 0x08, 0x25, 0x01, 0x05, 0x85, 0x19, 0x40,
                             0x29, 0x47, 0xB1, 0x02), END))
    data = bytearray(b"\xa5")
    d.fields[1].insert(data, 1)
    d.fields[0].insert(data, 0)
    assert data == bytearray(b"\xa6")


@pytest.mark.parametrize("broken", [
    bytes([0x05, 0x84, 0x27, 0xFF]),  # item cut short
    bytes(UPS),  # collection never closed
    bytes([0xC0]),  # End Collection alone
    bytes(UPS) + bytes([0x75, 0x08, 0x97, 0xFF, 0xFF, 0xFF, 0x7F, 0x81, 0x02, 0xC0]),  # huge
])
def test_broken_descriptors_are_refused(broken):
    with pytest.raises(hp.HidError):
        hp.parse(broken)


MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")

_MP_SCRIPT = """
import sys
sys.path.insert(0, %r)
import hidparser as hp
d = hp.parse(bytes(%r))
for f in d.fields:
    print(hp.path_to_string(f.path), f.kind, f.report_id, f.offset, f.size,
          f.logical_min, f.logical_max, f.exponent())
"""


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no micropython binary")
@pytest.mark.parametrize("name,sub,length", DEVICES)
def test_parser_runs_the_same_under_micropython(name, sub, length):
    desc = FakeUps(name).descriptor
    script = _MP_SCRIPT % (os.path.dirname(hp.__file__), list(desc))
    r = subprocess.run([MICROPYTHON, "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    d = hp.parse(desc)
    want = ["%s %s %d %d %d %d %d %d" % (hp.path_to_string(f.path), f.kind, f.report_id,
                                         f.offset, f.size, f.logical_min, f.logical_max,
                                         f.exponent()) for f in d.fields]
    assert r.stdout.splitlines() == want


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_fail_cleanly(data):
    try:
        d = hp.parse(data)
    except hp.HidError:
        return
    for f in d.fields:
        assert f.size >= 0 and f.offset >= 0
        f.to_physical(f.extract(b"\xff" * 8))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 32), st.integers(0, 40), st.integers(-(2 ** 31), 2 ** 31 - 1),
       st.binary(min_size=10, max_size=10))
def test_insert_then_extract_round_trips(size, offset, value, background):
    # a signed field of `size` bits at `offset`, written over arbitrary bits
    lo, hi = -(1 << (size - 1)), (1 << (size - 1)) - 1
    if size == 1:
        lo, hi = 0, 1
    value = max(lo, min(hi, value))
    desc = _desc(UPS, (0x75, size, 0x95, 0x01, 0x17) + tuple(lo.to_bytes(4, "little",
                                                                          signed=True))
                 + (0x27,) + tuple(hi.to_bytes(4, "little", signed=True))
                 + (0x09, 0x30, 0xB1, 0x02), END)
    f = hp.parse(desc).fields[0]
    f.offset = offset
    data = bytearray(background)
    f.insert(data, value)
    assert f.extract(data) == value
    mask = ((1 << size) - 1) << offset
    before = int.from_bytes(background, "little")
    after = int.from_bytes(bytes(data), "little")
    assert before & ~mask == after & ~mask  # nothing else changed
