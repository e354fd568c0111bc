"""A monitoring client repeats the same GET VAR bytes on one connection:
upsd answers repeats from remembered, already encoded replies, and every
change must still show through on that same connection: new values from
the driver, and the driver going away."""

import socket
import time

from nutstack import Stack

SEQ = """ups.status: OL
battery.charge: 100
device.model: Loop
TIMER 1
ups.status: OB
battery.charge: 50
TIMER 1
"""


def ask(sock, request, replies):
    sock.sendall(request)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, "upsd closed the connection"
        data += chunk
    replies.append(data)
    return data


def test_repeated_get_sees_driver_changes_and_loss(tmp_path):
    seq = tmp_path / "loop.seq"
    seq.write_text(SEQ)
    with Stack(tmp_path, ups={"loop": (seq, "\tmode = dummy-loop\n")}) as s:
        s.start()
        request = b"GET VAR loop ups.status\n"
        replies = []
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            end = time.monotonic() + 10
            while time.monotonic() < end and len(set(replies)) < 2:
                ask(sock, request, replies)
                time.sleep(0.01)
            assert set(replies) == {b'VAR loop ups.status "OL"\n',
                                    b'VAR loop ups.status "OB"\n'}, set(replies)
            # Both values came back more than once each: repeats were
            # answered, and a change ended each run of them.
            runs = sum(1 for a, b in zip(replies, replies[1:]) if a != b)
            assert runs >= 1 and len(replies) > runs + 2

            driver = s.procs[0]
            driver.terminate()
            driver.wait(10)
            end = time.monotonic() + 10
            last = None
            while time.monotonic() < end:
                last = ask(sock, request, replies)
                if last.startswith(b"ERR"):
                    break
                time.sleep(0.05)
            assert last in (b"ERR DRIVER-NOT-CONNECTED\n", b"ERR DATA-STALE\n"), last
