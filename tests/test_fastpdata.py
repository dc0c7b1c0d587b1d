"""receiver.fastpdata parses P-DATA-TF PDV items as pynetdicom does and leaves any
malformed PDU to pynetdicom (which refuses it); P-DATA already waiting are read in one go
only while the DUL loop has nothing else to do. The fast path itself runs in every
receiver test; tests/test_pipeline.py and the side-by-side tests check its output."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.timer import Timer

from receiver import fastpdata
from receiver.fastpdata import pdv_items


def pdv(context: int, header: int, fragment: bytes) -> bytes:
    return struct.pack(">IB", len(fragment) + 2, context) + bytes([header]) + fragment


def test_items_are_pynetdicoms() -> None:
    body = pdv(1, 0x00, b"abc") + pdv(3, 0x02, b"") + pdv(5, 0x03, b"\x00" * 16378)
    pdu = P_DATA_TF()
    pdu.decode(struct.pack(">BBI", 4, 0, len(body)) + body)
    assert pdv_items(memoryview(body)) == pdu.to_primitive().presentation_data_value_list


def test_malformed_items_are_left_to_pynetdicom() -> None:
    good = pdv(1, 0x00, b"abc")
    for body in (b"", good[:-1], good + b"\x00", struct.pack(">IB", 1, 1) + b"\x00", good + good[:5]):
        assert pdv_items(memoryview(body)) is None


class FakeDIMSE:
    """Records each primitive; the message is complete at a last data set fragment, and
    ``on_receive`` may queue work for the DUL (as an abort or the exception guard does)."""

    def __init__(self, dul: Any, on_receive: Callable[[Any], None] = lambda dul: None) -> None:
        self.dul, self.on_receive = dul, on_receive
        self.message: Any = object()
        self.received: list[list[tuple[int, bytes]]] = []

    def receive_primitive(self, primitive: P_DATA) -> None:
        self.received.append(primitive.presentation_data_value_list)
        if primitive.presentation_data_value_list[-1][1][0] & 0x02:
            self.message = None
        self.on_receive(self.dul)


def fake_dul(sock: socket.socket) -> Any:
    """The parts of a DULServiceProvider in Sta6 that the fast path reads."""
    dul = SimpleNamespace(socket=SimpleNamespace(socket=sock), state_machine=SimpleNamespace(current_state="Sta6"),
                          to_provider_queue=queue.Queue(), event_queue=queue.Queue(), _kill_thread=False,
                          _idle_timer=Timer(None))
    dul.assoc = SimpleNamespace(_handlers={})
    dul.assoc.dimse = FakeDIMSE(dul)
    return dul


def pdata_pdu(header: int, fragment: bytes) -> bytes:
    body = pdv(1, header, fragment)
    return struct.pack(">BBI", 4, 0, len(body)) + body


def primitive_of(pdu_bytes: bytes) -> list[tuple[int, bytes]]:
    pdu = P_DATA_TF()
    pdu.decode(pdu_bytes)
    return pdu.to_primitive().presentation_data_value_list


RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"


@pytest.mark.parametrize("queued", [None, "event", "primitive", "kill"])
def test_pdus_already_there_are_read_in_one_go_until_the_message_or_the_dul_needs_its_loop(queued: str | None) -> None:
    """A data set's P-DATA waiting on the socket go to DIMSE in one call, each the primitive
    pynetdicom would make, up to the one that completes the message; the next PDU is left
    to the DUL loop. Anything the loop must do first (an event, a primitive to send, a
    kill) stops the reading after the PDU that caused it."""
    ours, peer = socket.socketpair()
    pdus = [pdata_pdu(0x00, bytes([n]) * 16000) for n in range(5)] + [pdata_pdu(0x02, b"end")]
    peer.sendall(b"".join(pdus) + RELEASE_RQ)
    dul = fake_dul(ours)

    def queue_work(dul: Any) -> None:
        if len(dul.assoc.dimse.received) == 2:
            if queued == "event":
                dul.event_queue.put("Evt19")
            elif queued == "primitive":
                dul.to_provider_queue.put("A-ABORT")
            elif queued == "kill":
                dul._kill_thread = True

    dul.assoc.dimse.on_receive = queue_work
    fastpdata._read_pdu_data(dul)
    read = 2 if queued else len(pdus)
    assert dul.assoc.dimse.received == [primitive_of(pdu) for pdu in pdus[:read]]
    ours.setblocking(False)
    assert ours.recv(1 << 20) == b"".join(pdus[read:]) + RELEASE_RQ
    ours.close(), peer.close()


def test_a_pdu_read_in_pieces_is_read_whole() -> None:
    ours, peer = socket.socketpair()
    pdu = pdata_pdu(0x02, b"x" * 50000)
    dul = fake_dul(ours)
    peer.sendall(pdu[:7])
    sender = threading.Timer(0.2, peer.sendall, [pdu[7:]])
    sender.start()
    fastpdata._read_pdu_data(dul)
    sender.join()
    assert dul.assoc.dimse.received == [primitive_of(pdu)]
    ours.close(), peer.close()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection (the receiver's kind of socket: ``MSG_TRUNC`` drops bytes)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    return ours, peer


def wait_readable(sock: socket.socket, size: int) -> None:
    """Until ``size`` bytes are waiting on ``sock`` (a peek shows only what has arrived)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            if len(sock.recv(size, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= size:
                return
        except BlockingIOError:
            pass
        assert time.monotonic() < deadline, "the peer's bytes did not arrive"
        time.sleep(0.005)


def test_the_pdus_of_one_peek_go_on_as_views_and_only_their_bytes_leave_the_socket() -> None:
    """Three complete P-DATA and the start of a fourth are waiting: the three go to DIMSE
    as pynetdicom would make them, their fragments views of the peeked bytes (no copy),
    and the socket still holds exactly the fourth's start."""
    ours, peer = tcp_pair()
    pdus = [pdata_pdu(0x00, bytes([n]) * 16000) for n in range(3)]
    partial = pdata_pdu(0x00, b"y" * 16000)[:9000]
    peer.sendall(b"".join(pdus) + partial)
    wait_readable(ours, 3 * len(pdus[0]) + len(partial))
    dul = fake_dul(ours)
    assert fastpdata._receive_peeked(dul, dul.assoc, ours) == 3
    assert dul.assoc.dimse.received == [primitive_of(pdu) for pdu in pdus]
    assert all(type(fragment) is memoryview and fragment.readonly
               for items in dul.assoc.dimse.received for _, fragment in items)
    ours.setblocking(False)
    assert ours.recv(1 << 20) == partial
    ours.close(), peer.close()


@pytest.mark.parametrize("first", ["malformed", "larger than a peek"])
def test_a_pdu_the_peek_cannot_take_stays_for_the_single_pdu_path(first: str) -> None:
    """A malformed P-DATA (pynetdicom must refuse it) or one larger than :data:`BATCH` is
    not taken from the peek, nor anything after it; ``_read_pdu_data`` then reads it alone."""
    ours, peer = tcp_pair()
    if first == "malformed":
        head = struct.pack(">BBI", 4, 0, 7) + struct.pack(">IB", 9, 1) + b"\x00\x00"  # item longer than the PDU
    else:
        head = pdata_pdu(0x00, b"z" * (fastpdata.BATCH + 100))
    tail = pdata_pdu(0x02, b"end")
    peer.sendall(head + tail)
    waiting = min(len(head) + len(tail), 1 << 16)  # what surely fits in the socket's buffer
    wait_readable(ours, waiting)
    dul = fake_dul(ours)
    assert fastpdata._receive_peeked(dul, dul.assoc, ours) == 0
    assert ours.recv(waiting, socket.MSG_PEEK) == (head + tail)[:waiting]  # nothing taken
    if first == "larger than a peek":
        fastpdata._read_pdu_data(dul)
        assert dul.assoc.dimse.received == [primitive_of(head), primitive_of(tail)]
    ours.close(), peer.close()


def test_what_dimse_was_given_leaves_the_socket_even_when_dimse_raises() -> None:
    """DIMSE failing on the second PDU: the first two are dropped from the socket, so
    nothing is handed over twice; the rest stays."""
    ours, peer = tcp_pair()
    pdus = [pdata_pdu(0x00, bytes([n]) * 1000) for n in range(4)]
    peer.sendall(b"".join(pdus))
    wait_readable(ours, sum(map(len, pdus)))
    dul = fake_dul(ours)

    def fail_on_second(dul: Any) -> None:
        if len(dul.assoc.dimse.received) == 2:
            raise RuntimeError("DIMSE failed")

    dul.assoc.dimse.on_receive = fail_on_second
    with pytest.raises(RuntimeError):
        fastpdata._receive_peeked(dul, dul.assoc, ours)
    ours.setblocking(False)
    assert ours.recv(1 << 20) == b"".join(pdus[2:])
    ours.close(), peer.close()
