"""A small mDNS responder: the appliance announces ``_nut._tcp`` on 3493.

Home Assistant (and any DNS-SD browser) finds NUT servers by asking the
local network, over multicast DNS (RFC 6762, 224.0.0.251 port 5353), for
PTR records of ``_nut._tcp.local``. This module answers for one host:

    _services._dns-sd._udp.local  PTR  _nut._tcp.local
    _nut._tcp.local               PTR  <hostname>._nut._tcp.local
    <hostname>._nut._tcp.local    SRV  0 0 3493 <hostname>.local
    <hostname>._nut._tcp.local    TXT  txtvers=1
    <hostname>.local              A    the address the query came in on

`Responder` is the protocol without I/O: a query packet and where it came
from in, reply packets and where to send them out. `serve` is the socket
around it. Replies follow RFC 6762: multicast to the group, except to a
"legacy" client asking from a port other than 5353 (dig, nslookup) and to
a question with the unicast-response bit, which get a direct answer.

    nutapp mdns --hostname nut          (or python -m nutapp.mdns)
"""

import argparse
import socket
import struct
import sys

GROUP = "224.0.0.251"
PORT = 5353
SERVICE = "_nut._tcp.local"
SERVICES = "_services._dns-sd._udp.local"
NUT_PORT = 3493

TYPE_A, TYPE_PTR, TYPE_TXT, TYPE_AAAA, TYPE_SRV, TYPE_ANY = 1, 12, 16, 28, 33, 255
CLASS_IN = 1
CACHE_FLUSH = 0x8000
UNICAST_RESPONSE = 0x8000

HOST_TTL = 120  # records naming the host (A, SRV): RFC 6762 section 10
OTHER_TTL = 4500
LEGACY_TTL = 10


class MalformedPacket(ValueError):
    pass


def encode_name(name):
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("utf-8")
        if not 0 < len(raw) < 64:
            raise ValueError("bad DNS label in %r" % name)
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def decode_name(packet, offset):
    """``(name, offset after it)``, following compression pointers."""
    labels, end, jumps = [], None, 0
    while True:
        if offset >= len(packet):
            raise MalformedPacket("name runs past the end")
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(packet):
                raise MalformedPacket("cut pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | packet[offset + 1]
            jumps += 1
            if jumps > 32:
                raise MalformedPacket("pointer loop")
            continue
        if length & 0xC0:
            raise MalformedPacket("bad label type")
        offset += 1
        if length == 0:
            break
        labels.append(packet[offset:offset + length].decode("utf-8", "replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def parse_message(packet):
    """``(id, flags, [(name, qtype, qclass)], records)`` of a DNS message;
    `records` holds ``(name, rtype, data)`` of every answer, authority and
    additional record, in order."""
    if len(packet) < 12:
        raise MalformedPacket("shorter than a DNS header")
    ident, flags, qd, an, ns, ar = struct.unpack(">6H", packet[:12])
    offset, questions, answers = 12, [], []
    for _ in range(qd):
        name, offset = decode_name(packet, offset)
        if offset + 4 > len(packet):
            raise MalformedPacket("cut question")
        qtype, qclass = struct.unpack(">HH", packet[offset:offset + 4])
        offset += 4
        questions.append((name, qtype, qclass))
    for _ in range(an + ns + ar):
        name, offset = decode_name(packet, offset)
        if offset + 10 > len(packet):
            raise MalformedPacket("cut record")
        rtype, _, _, length = struct.unpack(">HHIH", packet[offset:offset + 10])
        offset += 10
        data = packet[offset:offset + length]
        if rtype == TYPE_PTR:
            data = decode_name(packet, offset)[0]
        elif rtype == TYPE_SRV:
            data = struct.unpack(">HHH", data[:6]) + (decode_name(packet, offset + 6)[0],)
        offset += length
        answers.append((name, rtype, data))
    return ident, flags, questions, answers


def build_query(name, qtype, ident=0, unicast=False):
    return (struct.pack(">6H", ident, 0, 1, 0, 0, 0) + encode_name(name)
            + struct.pack(">HH", qtype, CLASS_IN | (UNICAST_RESPONSE if unicast else 0)))


class Responder:
    """mDNS answers for one host and its NUT service."""

    def __init__(self, hostname, port=NUT_PORT, txt=(b"txtvers=1",)):
        self.hostname = hostname
        self.host = hostname + ".local"
        self.instance = "%s.%s" % (hostname, SERVICE)
        self.port = port
        self.txt = list(txt)

    def records(self, name, qtype, address):
        """``[(name, type, ttl, unique, rdata)]`` answering one question."""
        name = name.lower().rstrip(".")
        want = lambda t: qtype in (t, TYPE_ANY)  # noqa: E731
        out = []
        if name == SERVICES and want(TYPE_PTR):
            out.append((SERVICES, TYPE_PTR, OTHER_TTL, False, encode_name(SERVICE)))
        if name == SERVICE and want(TYPE_PTR):
            out.append((SERVICE, TYPE_PTR, OTHER_TTL, False, encode_name(self.instance)))
        if name == self.instance.lower():
            if want(TYPE_SRV):
                out.append((self.instance, TYPE_SRV, HOST_TTL, True,
                            struct.pack(">HHH", 0, 0, self.port) + encode_name(self.host)))
            if want(TYPE_TXT):
                out.append((self.instance, TYPE_TXT, OTHER_TTL, True, self._txt()))
        if name == self.host.lower() and want(TYPE_A) and address:
            out.append((self.host, TYPE_A, HOST_TTL, True, socket.inet_aton(address)))
        return out

    def additional(self, answers, address):
        """The records a browser needs next (RFC 6763 section 12)."""
        extra = []
        types = set(r[1] for r in answers)
        if TYPE_PTR in types and any(r[0] == SERVICE for r in answers):
            extra += self.records(self.instance, TYPE_SRV, address)
            extra += self.records(self.instance, TYPE_TXT, address)
        if TYPE_PTR in types or TYPE_SRV in types:
            extra += self.records(self.host, TYPE_A, address)
        return [r for r in extra if r not in answers]

    def _txt(self):
        out = bytearray()
        for item in self.txt or [b""]:
            out.append(len(item))
            out += item
        return bytes(out)

    def handle(self, packet, source, address):
        """Replies to one packet from `source` (ip, port) that arrived on an
        interface whose IPv4 address is `address`: ``[(bytes, destination)]``."""
        try:
            ident, flags, questions, _ = parse_message(packet)
        except MalformedPacket:
            return []
        if flags & 0x8000 or flags & 0x7800:
            return []  # a response, or not a standard query
        legacy = source[1] != PORT
        answers, unicast = [], legacy
        for name, qtype, qclass in questions:
            if qclass & 0x7FFF not in (CLASS_IN, 255):
                continue
            found = self.records(name, qtype, address)
            if found and qclass & UNICAST_RESPONSE:
                unicast = True
            answers += [r for r in found if r not in answers]
        if not answers:
            return []
        extra = self.additional(answers, address)
        if legacy:
            reply = _message(ident, questions, answers, extra, legacy=True)
        else:
            reply = _message(0, [], answers, extra, legacy=False)
        return [(reply, source if unicast else (GROUP, PORT))]

    def announcement(self, address):
        """An unsolicited response announcing everything (sent at start)."""
        answers = (self.records(SERVICE, TYPE_PTR, address)
                   + self.records(self.instance, TYPE_ANY, address)
                   + self.records(self.host, TYPE_A, address))
        return _message(0, [], answers, [], legacy=False)


def _message(ident, questions, answers, extra, legacy):
    flags = 0x8400  # response, authoritative
    out = bytearray(struct.pack(">6H", ident, flags, len(questions), len(answers), 0,
                                len(extra)))
    for name, qtype, qclass in questions:
        out += encode_name(name) + struct.pack(">HH", qtype, qclass & 0x7FFF)
    for name, rtype, ttl, unique, rdata in list(answers) + list(extra):
        rclass = CLASS_IN | (CACHE_FLUSH if unique and not legacy else 0)
        if legacy:
            ttl = min(ttl, LEGACY_TTL)
        out += encode_name(name) + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata))
        out += rdata
    return bytes(out)


# --- the socket -------------------------------------------------------------------

_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def open_socket(interfaces=None):
    """A UDP socket on port 5353 that has joined the mDNS group on each
    interface (all with IPv4 multicast when `interfaces` is None)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    sock.bind(("", PORT))
    joined = []
    for index, name in socket.if_nameindex():
        if interfaces is not None and name not in interfaces:
            continue
        mreqn = socket.inet_aton(GROUP) + socket.inet_aton("0.0.0.0") + struct.pack("@i", index)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            joined.append(name)
        except OSError:
            pass  # no multicast or no IPv4 on this interface
    return sock, joined


def serve(responder, sock, announce_on=(), stop=None):
    """Answer queries until `stop()` is true (checked once a second)."""
    for index, address in announce_on:
        _send(sock, responder.announcement(address), (GROUP, PORT), index)
    sock.settimeout(1.0)
    while stop is None or not stop():
        try:
            packet, anc, _, source = sock.recvmsg(9000, socket.CMSG_SPACE(12))
        except socket.timeout:
            continue
        index, address = _pktinfo(anc)
        for reply, dest in responder.handle(packet, source, address):
            try:
                _send(sock, reply, dest, index)
            except OSError as e:
                sys.stderr.write("mdns: cannot answer %s: %s\n" % (dest[0], e.strerror))


def _pktinfo(ancillary):
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(data) >= 12:
            index = struct.unpack("@i", data[:4])[0]
            return index, socket.inet_ntoa(data[4:8])  # ipi_spec_dst: our address
    return 0, None


def _send(sock, packet, dest, index):
    if dest[0] == GROUP and index:
        mreqn = socket.inet_aton("0.0.0.0") + socket.inet_aton("0.0.0.0") + struct.pack(
            "@i", index)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
    sock.sendto(packet, dest)


def main(argv=None, prog="nutapp mdns"):
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Announce the NUT server (_nut._tcp, port 3493) by multicast DNS."))
    parser.add_argument("--hostname", default=None,
                        help="name to answer for (<name>.local); default: this host's")
    parser.add_argument("--port", type=int, default=NUT_PORT, help="NUT port (3493)")
    parser.add_argument("--interface", action="append",
                        help="answer on this interface only (repeatable)")
    args = parser.parse_args(argv)

    hostname = (args.hostname or socket.gethostname()).split(".")[0].lower()
    responder = Responder(hostname, args.port)
    sock, joined = open_socket(args.interface)
    if not joined:
        sys.stderr.write("%s: no interface could join %s\n" % (prog, GROUP))
        return 1
    sys.stdout.write("%s: answering for %s.local and %s on %s\n"
                     % (prog, hostname, SERVICE, ", ".join(joined)))
    sys.stdout.flush()
    try:
        serve(responder, sock)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
