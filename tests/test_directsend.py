"""receiver.directsend: the association thread sends its P-DATA-TF itself, in order, and
leaves everything else to pynetdicom's DUL thread. Every receiver test runs it too."""

from __future__ import annotations

import queue
import socket
import threading
from typing import Any, Iterator

import pytest
from pynetdicom import AE, _config, evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import A_RELEASE, P_DATA
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationSocket

from receiver import directsend, reactor_wakeups
from tests.sidebyside import HOST, free_port

directsend.install()
reactor_wakeups.install()  # the SCU below is pynetdicom's: unpatched, its reactor may take an answer


def pdata(payload: bytes) -> P_DATA:
    primitive = P_DATA()
    primitive.presentation_data_value_list.append((1, b"\x03" + payload))
    return primitive


class _Provider:
    """The parts of a DUL that ``send_pdu`` looks at, around one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = type("S", (), {"socket": sock, "send": lambda _, data: sock.sendall(data)})()
        self.state_machine = type("M", (), {"current_state": "Sta6"})()
        self.assoc = type("A", (), {"get_handlers": lambda _, event: []})()
        self.to_provider_queue: "queue.Queue[Any]" = queue.Queue()
        self._spool_send_lock = threading.RLock()


@pytest.fixture
def provider() -> Iterator[tuple[_Provider, socket.socket]]:
    ours, peer = socket.socketpair()
    peer.settimeout(2)
    yield _Provider(ours), peer
    ours.close()
    peer.close()


def test_idle_data_transfer_sends_at_once(provider: tuple[_Provider, socket.socket]) -> None:
    dul, peer = provider
    DULServiceProvider.send_pdu(dul, pdata(b"answer"))  # type: ignore[arg-type]
    expected = P_DATA_TF(pdata(b"answer")).encode()
    assert peer.recv(len(expected) + 10) == expected
    assert dul.to_provider_queue.empty()


@pytest.mark.parametrize("reason", ["queued before", "other state", "handler bound", "not a P-DATA"])
def test_anything_else_is_queued_for_the_dul(provider: tuple[_Provider, socket.socket], reason: str) -> None:
    dul, peer = provider
    earlier, primitive = A_RELEASE(), pdata(b"answer")
    if reason == "queued before":
        dul.to_provider_queue.put(earlier)
    elif reason == "other state":
        dul.state_machine.current_state = "Sta7"
    elif reason == "handler bound":
        dul.assoc.get_handlers = lambda event: [print] if event is evt.EVT_PDU_SENT else []  # type: ignore[attr-defined]
    else:
        primitive = earlier
    DULServiceProvider.send_pdu(dul, primitive)  # type: ignore[arg-type]
    queued = list(dul.to_provider_queue.queue)
    assert queued[-1] is primitive and queued[0] is (earlier if reason == "queued before" else primitive)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)


def test_a_send_waits_for_the_dul_send_in_progress(provider: tuple[_Provider, socket.socket]) -> None:
    """DT-1 holds the lock between taking its PDU off the queue and sending it."""
    dul, peer = provider
    lock = directsend.send_lock(dul)  # type: ignore[arg-type]
    lock.acquire()  # the DUL thread is in DT-1
    sender = threading.Thread(target=DULServiceProvider.send_pdu, args=(dul, pdata(b"second")))
    sender.start()
    sender.join(0.2)
    assert sender.is_alive()  # blocked behind the DUL's send
    first = P_DATA_TF(pdata(b"first")).encode()
    dul.socket.send(first)
    lock.release()
    sender.join(2)
    second = P_DATA_TF(pdata(b"second")).encode()
    got = b""
    while len(got) < len(first) + len(second):
        got += peer.recv(4096)
    assert got == first + second


@pytest.fixture(autouse=True)
def quiet_pynetdicom(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the receiver runs it without -d: pynetdicom's log handlers (bound to the send
    events) are off."""
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "none")


def _serve_echoes(handlers: list[tuple]) -> list[tuple[bool, int]]:
    """Ten C-ECHOs to an SCP with ``handlers`` bound: for each PDU the SCP sent, whether
    its DUL thread sent it, and its type."""
    ae = AE()
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server((HOST, port), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda event: 0x0000), *handlers])
    sends: list[tuple[bool, int]] = []
    original = AssociationSocket.send

    def spy(self: AssociationSocket, data: bytes) -> None:
        if self.assoc.is_acceptor:
            sends.append((isinstance(threading.current_thread(), DULServiceProvider), data[0]))
        original(self, data)

    AssociationSocket.send = spy  # type: ignore[method-assign]
    try:
        scu = AE()
        scu.add_requested_context(Verification)
        assoc = scu.associate(HOST, port)
        assert assoc.is_established
        assert [assoc.send_c_echo().get("Status") for _ in range(10)] == [0] * 10
        assoc.release()
    finally:
        AssociationSocket.send = original  # type: ignore[method-assign]
        server.shutdown()
    return sends


def test_answers_leave_from_the_association_thread() -> None:
    sends = _serve_echoes([])
    assert [by_dul for by_dul, pdu in sends if pdu == 0x04] == [False] * 10
    assert (True, 0x02) in sends and (True, 0x06) in sends  # A-ASSOCIATE-AC, A-RELEASE-RP: the DUL's


def test_bound_send_events_keep_pynetdicoms_path() -> None:
    sends = _serve_echoes([(evt.EVT_PDU_SENT, lambda event: None)])
    assert [by_dul for by_dul, pdu in sends if pdu == 0x04] == [True] * 10
