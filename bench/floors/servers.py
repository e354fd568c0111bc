"""Reference servers for bench/floors.py: how much of a GET VAR round trip
is the kernel, how much asyncio, how much nutapp's session.

    python servers.py KIND PORT

KIND is one of
  epoll-fixed      bare select.epoll loop answering every line with one fixed reply
  asyncio-reader   asyncio loop.add_reader + sock.send, fixed reply
  asyncio-fixed    asyncio Protocol/transport, fixed reply
  asyncio-session  nutapp's ClientProtocol + Session on asyncio (no driver link, no ticker)
  epoll-session    nutapp's Session on a bare select.epoll loop

The session kinds serve UPS "ups" filled from the device dump given in
NUTAPP_BENCH_DUMP. Listens on 127.0.0.1 only; runs until killed.
"""

import asyncio
import os
import select
import socket
import sys
import time

FIXED = b'VAR ups ups.status "OL"\n'
# Every server reads into one preallocated buffer, as nutapp's upsd does, so
# that none pays for a fresh allocation per read (see upsd.ClientProtocol).
BUFFER = memoryview(bytearray(64 * 1024))


def make_core():
    from nutapp.core.config import UpsConf, UpsdConf
    from nutapp.core.upsd import Upsd
    from nutapp.core.users import Users
    from nutapp.core.parseconf import quote

    core = Upsd(UpsdConf(), Users(), version="2.8.0")
    core.set_ups_table(list(UpsConf.parse(
        "[ups]\n driver = dummy-ups\n port = bench.dev\n").ups.values()))
    ups = core.get_ups("ups")
    ups.driver_connected(lambda line: True, 0.0)
    with open(os.environ["NUTAPP_BENCH_DUMP"]) as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        name, value = line.split(":", 1)
        core.driver_line(ups, 'SETINFO %s "%s"' % (name.strip(), quote(value.strip())))
    core.driver_line(ups, "DATAOK")
    core.driver_line(ups, "DUMPDONE")
    return core


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    s.setblocking(False)
    return s


def accept(ls):
    c, _ = ls.accept()
    c.setblocking(False)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def epoll_loop(port, on_data):
    ls = listener(port)
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    conns = {}
    while True:
        for fd, _ in ep.poll():
            if fd == ls.fileno():
                c = accept(ls)
                conns[c.fileno()] = [c, b"", None]
                ep.register(c.fileno(), select.EPOLLIN)
                continue
            conn = conns[fd]
            try:
                data = bytes(BUFFER[:conn[0].recv_into(BUFFER)])
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                conn[0].close()
                del conns[fd]
                continue
            reply = on_data(conn, data)
            if reply:
                try:
                    conn[0].send(reply)
                except OSError:
                    pass


def epoll_fixed(port):
    epoll_loop(port, lambda conn, data: FIXED * data.count(b"\n"))


def epoll_session(port):
    from nutapp.core.session import Session

    core = make_core()

    def on_data(conn, data):
        if conn[2] is None:
            conn[2] = Session(core, "127.0.0.1")
        core.now = time.monotonic()
        lines = (conn[1] + data if conn[1] else data).split(b"\n")
        conn[1] = lines.pop()
        out = [conn[2].handle_line(line.decode("latin-1")) for line in lines]
        return "".join(out).encode("latin-1", "replace")

    epoll_loop(port, on_data)


class _Fixed(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint):
        return BUFFER

    def buffer_updated(self, nbytes):
        self.transport.write(FIXED * BUFFER[:nbytes].tobytes().count(b"\n"))


async def _serve(port, factory):
    loop = asyncio.get_running_loop()
    await loop.create_server(factory, "127.0.0.1", port)
    await loop.create_future()


def asyncio_fixed(port):
    asyncio.run(_serve(port, _Fixed))


def asyncio_session(port):
    # What nutapp's upsd was up to its epoll rewrite: a BufferedProtocol
    # reading into one buffer and driving a Session.
    from nutapp.core.session import Session

    core = make_core()

    class _Session(_Fixed):
        def connection_made(self, transport):
            _Fixed.connection_made(self, transport)
            self.session = Session(core, "127.0.0.1")
            self.buf = b""

        def buffer_updated(self, nbytes):
            core.now = time.monotonic()
            data = bytes(BUFFER[:nbytes])
            lines = (self.buf + data if self.buf else data).split(b"\n")
            self.buf = lines.pop()
            out = [self.session.handle_line(line.decode("latin-1")) for line in lines]
            self.transport.write("".join(out).encode("latin-1", "replace"))

    asyncio.run(_serve(port, _Session))


def asyncio_reader(port):
    async def main():
        loop = asyncio.get_running_loop()
        ls = listener(port)

        def on_read(c):
            try:
                data = bytes(BUFFER[:c.recv_into(BUFFER)])
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(c.fileno())
                c.close()
                return
            try:
                c.send(FIXED * data.count(b"\n"))
            except OSError:
                pass

        loop.add_reader(ls.fileno(), lambda: (lambda c: loop.add_reader(
            c.fileno(), on_read, c))(accept(ls)))
        await loop.create_future()

    asyncio.run(main())


KINDS = {
    "epoll-fixed": epoll_fixed,
    "epoll-session": epoll_session,
    "asyncio-reader": asyncio_reader,
    "asyncio-fixed": asyncio_fixed,
    "asyncio-session": asyncio_session,
}

if __name__ == "__main__":
    KINDS[sys.argv[1]](int(sys.argv[2]))
