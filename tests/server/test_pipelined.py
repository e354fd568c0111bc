"""A client that sends many requests in one write gets every reply, in
order, byte for byte what it gets asking one at a time; and when that read
is all upsd has to do, the replies leave in a few sends rather than one, so
the client can start on the first while upsd makes the rest."""

import socket

from nutapp.core.config import UpsConf, UpsdConf
from nutapp.core.dstate import DriverState
from nutapp.core.session import Session
from nutapp.core.upsd import Upsd
from nutapp.core.users import Users
from nutapp.server import upsd as server
from nutstack import Stack

REQUESTS = [
    b"GET VAR dummy ups.status",
    b"VER",
    b"GET VAR dummy battery.charge",
    b"GET VAR dummy no.such.var",
    b"LIST UPS",
    b"GET VAR nosuchups ups.status",
    b"FROB",
    b"GET UPSDESC dummy",
    b'GET VAR "dummy" "ups.status"',
    b"LIST CMD dummy",
    b"GET NUMLOGINS dummy",
    b"GET VAR dummy ups.status",
    b"NETVER",
    b"LIST VAR dummy",
    b"GET TYPE dummy battery.charge",
    b"GET VAR dummy ups.status extra",
    b"HELP",
]


def read_replies(sock, count):
    """`count` replies: a LIST's ends at its END line, any other is one line."""
    data = b""
    replies = []
    while len(replies) < count:
        chunk = sock.recv(65536)
        assert chunk, "upsd closed the connection after %d replies" % len(replies)
        data += chunk
        while b"\n" in data and len(replies) < count:
            if data.startswith(b"BEGIN LIST"):
                end = data.find(b"\nEND LIST")
                if end < 0 or b"\n" not in data[end + 1:]:
                    break
                cut = data.index(b"\n", end + 1) + 1
            else:
                cut = data.index(b"\n") + 1
            replies.append(data[:cut])
            data = data[cut:]
    return replies


def test_pipelined_replies_match_one_at_a_time(tmp_path):
    with Stack(tmp_path) as s:
        s.start()
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            single = []
            for request in REQUESTS:
                sock.sendall(request + b"\n")
                single += read_replies(sock, 1)
            # The same requests, many times over, in one write.
            rounds = 20
            sock.sendall(b"".join(r + b"\n" for r in REQUESTS) * rounds)
            piped = read_replies(sock, len(REQUESTS) * rounds)
            assert piped == single * rounds
            # A short read on either side would have left a reply behind:
            # nothing more is waiting, and the connection still answers.
            sock.settimeout(0.3)
            try:
                extra = sock.recv(4096)
            except socket.timeout:
                extra = b""
            assert extra == b""
            sock.settimeout(10)
            sock.sendall(b"VER\n")
            assert read_replies(sock, 1) == [single[1]]


# -- in-process: how the replies to one read are cut into sends ---------------

class FakeSocket:
    """Records what upsd sends; takes at most `take` bytes per send."""

    def __init__(self, take=None):
        self.sends = []
        self.take = take

    def fileno(self):
        return 99

    def send(self, data):
        data = bytes(data)
        if self.take is not None:
            data = data[:self.take]
        self.sends.append(data)
        return len(data)

    def close(self):
        pass


class FakeEpoll:
    def __init__(self):
        self.masks = []

    def modify(self, fd, mask):
        self.masks.append(mask)

    def unregister(self, fd):
        pass


class FakeServer:
    def __init__(self, one_ready):
        self.core = Upsd(UpsdConf(), Users.parse(""))
        self.core.now = 100.0
        self.core.set_ups_table(list(UpsConf.parse(
            "[dummy]\n driver = dummy-ups\n port = a.dev\n").ups.values()))
        ups = self.core.get_ups("dummy")
        ups.driver_connected(lambda line: True, 100.0)
        d = DriverState()
        d.setinfo("ups.status", "OL")
        d.setinfo("battery.charge", "100")
        d.dataok()
        for line in d.dump_lines():
            self.core.driver_line(ups, line)
        self.one_ready = one_ready
        self.epoll = FakeEpoll()
        self.handlers = {}
        self.clients = set()
        self.per_source = {}
        self.logged = []

    def ratelog(self, event, msg, source=None):
        self.logged.append(msg)


def client(one_ready, take=None, sock=None):
    srv = FakeServer(one_ready)
    c = server.Client(srv, sock or FakeSocket(take), ("127.0.0.1", 5000))
    c.session = Session(srv.core, ("127.0.0.1", 5000))
    return c


def requests(n):
    names = [b"ups.status", b"battery.charge", b"no.such"]
    return b"".join(b"GET VAR dummy %s\n" % names[i % 3] for i in range(n))


def expected(n):
    replies = [b'VAR dummy ups.status "OL"\n', b'VAR dummy battery.charge "100"\n',
               b"ERR VAR-NOT-SUPPORTED\n"]
    return b"".join(replies[i % 3] for i in range(n))


def test_a_read_that_is_all_there_is_goes_out_in_parts():
    c = client(one_ready=True)
    c.data_received(requests(16))
    assert len(c.sock.sends) == server.PARTS
    assert b"".join(c.sock.sends) == expected(16)
    assert [s.count(b"\n") for s in c.sock.sends] == [4, 4, 4, 4]
    # Fewer requests than parts: one send each, never an empty one.
    c = client(one_ready=True)
    c.data_received(requests(3))
    assert [s.count(b"\n") for s in c.sock.sends] == [1, 1, 1]
    # An uneven count: the last part is the short one.
    c = client(one_ready=True)
    c.data_received(requests(10))
    assert [s.count(b"\n") for s in c.sock.sends] == [3, 3, 3, 1]
    assert b"".join(c.sock.sends) == expected(10)


def test_with_other_sockets_waiting_a_read_gets_one_send():
    c = client(one_ready=False)
    c.data_received(requests(16))
    assert c.sock.sends == [expected(16)]
    # One request is one send either way.
    c = client(one_ready=True)
    c.data_received(requests(1))
    assert c.sock.sends == [expected(1)]


def test_once_the_kernel_is_full_the_rest_of_the_read_waits_unanswered():
    c = client(one_ready=True, take=10)
    c.data_received(requests(16))
    # Only the first send reached the socket. What the kernel left of the
    # first part waits for the socket to be writable; the other 12 requests
    # wait unanswered, so one read never queues more than one part.
    assert c.sock.sends == [expected(16)[:10]]
    assert c.out == expected(4)[10:]
    assert c.buf == requests(16)[len(requests(4)):]
    assert c.server.epoll.masks[-1] & server.EPOLLOUT
    # Once the socket drains, they are answered, in order.
    c.sock.take = None
    c.on_event(server.EPOLLOUT)
    assert b"".join(c.sock.sends) == expected(16)
    assert c.out == b"" and c.buf == b""


def test_held_requests_keep_an_unfinished_line_after_them():
    c = client(one_ready=True, take=10)
    c.data_received(requests(8) + b"GET VAR dum")
    assert c.buf == requests(8)[len(requests(2)):] + b"GET VAR dum"
    c.sock.take = None
    c.on_event(server.EPOLLOUT)
    assert b"".join(c.sock.sends) == expected(8)
    assert c.buf == b"GET VAR dum"
    c.data_received(b"my ups.status\n")
    assert b"".join(c.sock.sends) == expected(8) + expected(1)


def test_logout_in_the_middle_ends_the_replies_there():
    c = client(one_ready=True)
    c.data_received(requests(6) + b"LOGOUT\n" + requests(6))
    assert b"".join(c.sock.sends) == expected(6) + b"OK Goodbye\n"
    assert c.closed


# -- the first read of an event is small; a full one is followed by more ------

def socket_client(one_ready=True):
    """A Client on one end of a real socket pair; the test holds the other."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    c = client(one_ready, sock=ours)
    return c, c.event_handler(), theirs


def test_a_batch_past_the_first_read_is_answered_in_one_event():
    c, handle, peer = socket_client()
    n = 60
    batch = requests(n)
    assert server.HOT_READ < len(batch) < server.HOT_READ + server.MORE_READ
    peer.sendall(batch)
    handle(server.EPOLLIN)  # one readable event takes the whole batch
    want = expected(n)
    got = b""
    while len(got) < len(want):
        got += peer.recv(65536)
    assert got == want
    assert c.buf == b""
    # A single request longer than the first read is answered in one event too.
    long_line = b"GET VAR dummy " + b"x" * (server.HOT_READ + 100) + b"\n"
    peer.sendall(long_line)
    handle(server.EPOLLIN)
    assert peer.recv(65536) == b"ERR VAR-NOT-SUPPORTED\n"
    assert c.buf == b""
    c.sock.close()
    peer.close()


def test_a_read_of_exactly_the_first_size_waits_for_nothing_more():
    # The follow-up read finds nothing: that is no error, and the requests
    # are answered at once.
    c, handle, peer = socket_client()
    line = b"GET VAR dummy ups.status"
    filler = b" " * (server.HOT_READ - len(line) - 1)
    request = line + filler + b"\n"
    assert len(request) == server.HOT_READ
    peer.sendall(request)
    handle(server.EPOLLIN)
    assert peer.recv(65536) == b'VAR dummy ups.status "OL"\n'
    assert not c.closed
    c.sock.close()
    peer.close()
