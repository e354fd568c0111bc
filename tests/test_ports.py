"""The tests' port picker: what CI's "Address already in use" came from.

A port the kernel hands out for 127.0.0.1 may still be held on another
address (here a connection from 127.0.0.3), and a server binding the
wildcard address on it fails.
"""

import socket

import ports


def test_a_port_held_on_another_loopback_address_is_not_free():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    held = socket.socket()
    held.bind(("127.0.0.3", 0))
    held.connect(srv.getsockname())
    try:
        port = held.getsockname()[1]
        with socket.socket() as probe:  # what the old picker checked: free
            probe.bind(("127.0.0.1", port))
        assert not ports._bindable(port)
    finally:
        held.close()
        srv.close()


def test_ports_are_below_the_ephemeral_range_and_never_repeat():
    got = [ports.free_port() for _ in range(50)]
    assert len(set(got)) == len(got)
    assert all(ports._FLOOR <= p < ports._ephemeral_low() for p in got)
    for p in got:  # and each is free on the wildcard addresses
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", p))
