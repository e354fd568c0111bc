"""libusb is found without ldconfig or a compiler (a Buildroot image has
neither, and ctypes.util.find_library then finds nothing)."""

import ctypes
import ctypes.util

import pytest
import usb.backend.libusb1 as libusb1

from nutapp.drivers.usbhid import usbdev


def nothing(name):
    return None


def test_the_systems_answer_comes_first(tmp_path):
    (tmp_path / "libusb-1.0.so.0").write_bytes(b"")
    assert usbdev.find_libusb("usb-1.0", dirs=[str(tmp_path)],
                              find_library=lambda n: "libusb-1.0.so.0") == "libusb-1.0.so.0"


def test_library_folders_when_the_system_cannot_say(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    assert usbdev.find_libusb("usb-1.0", dirs=[str(lib)], find_library=nothing) is None
    (lib / "libusb-1.0.so.0.3.0").write_bytes(b"")
    (lib / "libusbredirparser.so.1").write_bytes(b"")
    assert usbdev.find_libusb("usb-1.0", dirs=[str(lib)], find_library=nothing) == str(
        lib / "libusb-1.0.so.0.3.0")


def test_the_real_libusb_loads_when_find_library_finds_nothing(monkeypatch):
    path = usbdev.find_libusb("usb-1.0", find_library=nothing)
    if path is None:
        pytest.skip("no libusb-1.0 on this machine")
    assert hasattr(ctypes.CDLL(path), "libusb_init")
    # pyusb's own lookup, as on a Buildroot image, finds nothing; ours does.
    monkeypatch.setattr(ctypes.util, "find_library", nothing)
    monkeypatch.setattr(libusb1, "_lib", None)
    monkeypatch.setattr(libusb1, "_lib_object", None)
    assert libusb1.get_backend() is None
    monkeypatch.setattr(libusb1, "_lib", None)
    monkeypatch.setattr(libusb1, "_lib_object", None)
    assert usbdev.default_backend() is not None
