"""A minimal raw-socket DICOM client for the association set-up rate.

Each round is one TCP connection: A-ASSOCIATE-RQ, one C-ECHO-RQ (or one C-STORE-RQ of
a small object), A-RELEASE-RQ, close. The PDUs are built once with ``struct``
(PS3.8 §9.3), so the client costs microseconds per association and the rate measured
is the server's. It checks what it must to count honestly: an A-ASSOCIATE-AC with the
context accepted, a response with status 0x0000, an A-RELEASE-RP.
"""

from __future__ import annotations

import itertools
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPL_UID = b"1.2.826.0.1.3680043.8.498.7"
RELEASE_RQ = b"\x05\x00" + struct.pack(">I", 4) + b"\x00" * 4


def _uid(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\0" if len(raw) % 2 else raw


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(abstract: str, transfer: str, called: bytes = b"ANY-SCP", calling: bytes = b"BENCH") -> bytes:
    """A-ASSOCIATE-RQ with one presentation context (id 1) and a 16 KB maximum PDU."""
    context = _item(0x20, b"\x01\x00\x00\x00" + _item(0x30, abstract.encode()) + _item(0x40, transfer.encode()))
    user = _item(0x50, _item(0x51, struct.pack(">I", 16384)) + _item(0x52, IMPL_UID))
    body = (struct.pack(">HH", 1, 0) + called.ljust(16) + calling.ljust(16) + b"\0" * 32
            + _item(0x10, APP_CONTEXT) + context + user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def _element(group: int, elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group, elem, len(value)) + value


def command_set(elements: list[tuple[int, bytes]]) -> bytes:
    """An implicit VR LE command set with its (0000,0000) group length."""
    body = b"".join(_element(0, e, v) for e, v in elements)
    return _element(0, 0, struct.pack("<I", len(body))) + body


def p_data(flags: int, payload: bytes) -> bytes:
    """One P-DATA-TF with one PDV on context 1 (flags: 1 command, 2 last fragment)."""
    pdv = struct.pack(">IBB", len(payload) + 2, 1, flags) + payload
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def echo_rq() -> bytes:
    return p_data(3, command_set([(0x0002, _uid(VERIFICATION)), (0x0100, struct.pack("<H", 0x0030)),
                                  (0x0110, struct.pack("<H", 1)), (0x0800, struct.pack("<H", 0x0101))]))


def store_rq(sop_class: str, sop_instance: str, dataset: bytes) -> bytes:
    command = command_set([(0x0002, _uid(sop_class)), (0x0100, struct.pack("<H", 0x0001)),
                           (0x0110, struct.pack("<H", 1)), (0x0700, struct.pack("<H", 0)),
                           (0x0800, struct.pack("<H", 0x0000)), (0x1000, _uid(sop_instance))])
    return p_data(3, command) + p_data(2, dataset)


@dataclass(frozen=True)
class Round:
    """The bytes of one association's exchange.

    With ``instance`` (a SOP Instance UID that occurs in ``request``), every association
    stores a new object: :meth:`next_request` puts a counter into the UID's last seven
    digits, same length, so no byte but those changes.
    """

    associate: bytes
    request: bytes
    instance: bytes = b""
    _numbers: Iterator[int] = field(default_factory=itertools.count, compare=False, repr=False)

    def next_request(self) -> bytes:
        if not self.instance:
            return self.request
        return self.request.replace(self.instance, self.instance[:-7] + b"%07d" % next(self._numbers))


def echo_round() -> Round:
    return Round(associate_rq(VERIFICATION, IMPLICIT_LE), echo_rq())


def store_round(path: Path, unique: bool = False) -> Round:
    """One explicit-VR-LE Part 10 file as a C-STORE (the data set after its meta group);
    ``unique``: a new SOP Instance UID per association, as a modality sends new images.
    The same one every time would make each store replace the last one's file."""
    data = path.read_bytes()
    meta_len = struct.unpack_from("<I", data, 132 + 8)[0]
    dataset = data[132 + 12 + meta_len:]
    meta = data[132:132 + 12 + meta_len]
    sop_class, sop_instance = _uid_value(meta, 2, 0x0002), _uid_value(meta, 2, 0x0003)
    if not unique:
        return Round(associate_rq(sop_class, EXPLICIT_LE), store_rq(sop_class, sop_instance, dataset))
    numbered = sop_instance + ".10000000"  # the last component: "1" and seven digits
    dataset = _with_uid(dataset, 0x0008, 0x0018, numbered)
    return Round(associate_rq(sop_class, EXPLICIT_LE), store_rq(sop_class, numbered, dataset), numbered.encode())


def _uid_element(data: bytes, group: int, elem: int) -> tuple[int, int]:
    """Where the explicit-VR UI element (``group``, ``elem``) starts, and its value length."""
    at = data.index(struct.pack("<HH", group, elem) + b"UI")
    return at, struct.unpack_from("<H", data, at + 6)[0]


def _uid_value(data: bytes, group: int, elem: int) -> str:
    at, length = _uid_element(data, group, elem)
    return data[at + 8:at + 8 + length].rstrip(b"\0").decode()


def _with_uid(data: bytes, group: int, elem: int, uid: str) -> bytes:
    """``data`` (explicit VR LE, no undefined lengths before it) with a new UI value."""
    at, length = _uid_element(data, group, elem)
    value = _uid(uid)
    return data[:at] + struct.pack("<HH2sH", group, elem, b"UI", len(value)) + value + data[at + 8 + length:]


class ProtocolError(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProtocolError("connection closed by the server")
        buf += chunk
    return bytes(buf)


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    kind, _, length = struct.unpack(">BBI", _recv_exact(sock, 6))
    return kind, _recv_exact(sock, length)


def _context_accepted(ac: bytes) -> bool:
    at = 68  # after protocol version, reserved, AE titles, reserved
    while at + 4 <= len(ac):
        kind, _, length = struct.unpack_from(">BBH", ac, at)
        if kind == 0x21:
            return ac[at + 6] == 0
        at += 4 + length
    return False


def _response_status(pdu: bytes) -> int:
    """Status (0000,0900) of a single-PDV command response."""
    command = pdu[6:]
    at = 0
    while at + 8 <= len(command):
        group, elem, length = struct.unpack_from("<HHI", command, at)
        if (group, elem) == (0, 0x0900):
            return struct.unpack_from("<H", command, at + 8)[0]
        at += 8 + length
    raise ProtocolError("response without a status")


def one_round(port: int, rnd: Round, host: str = "127.0.0.1") -> None:
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(rnd.associate)
        kind, body = read_pdu(sock)
        if kind != 0x02 or not _context_accepted(body):
            raise ProtocolError(f"association not accepted (PDU type {kind:#x})")
        sock.sendall(rnd.next_request())
        kind, body = read_pdu(sock)
        if kind != 0x04 or _response_status(body) != 0:
            raise ProtocolError(f"no success response (PDU type {kind:#x})")
        sock.sendall(RELEASE_RQ)
        kind, _ = read_pdu(sock)
        if kind != 0x06:
            raise ProtocolError(f"no A-RELEASE-RP (PDU type {kind:#x})")


def rate(port: int, rnd: Round, seconds: float, limit: int) -> tuple[float, int]:
    """Associations per second, one after the other, for ``seconds`` or ``limit`` rounds."""
    start = time.perf_counter()
    done = 0
    while done < limit and time.perf_counter() - start < seconds:
        one_round(port, rnd)
        done += 1
    return done / (time.perf_counter() - start), done
