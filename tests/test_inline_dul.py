"""receiver.inline_dul: the receiver's associations run their DUL in the association thread,
with no DUL thread, and still end every way they did: release, an abort from another
thread, a pass that raises. pynetdicom's own SCU (this process) keeps its DUL thread.

The receiver runs in a subprocess (its patches stay out of this process) and reports
what its C-ECHO handler sees as JSON lines on stdout.
"""

from __future__ import annotations

import queue
import time
from typing import Any, Iterator

import pytest
from pynetdicom import AE, evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from receiver import inline_dul, reactor_wakeups
from tests.scriptserver import ScriptServer
from tests.sidebyside import HOST, free_port

reactor_wakeups.install()  # the SCU below is pynetdicom's: unpatched, its reactor may take an answer

SERVER = """
import json, sys, threading
from pynetdicom import evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from receiver import inline_dul
from receiver.options import parse_args
from receiver.pynetdicom_fixes import abort_association
from receiver.server import build_ae

def say(**what):
    print(json.dumps(what), flush=True)

def broken_pass():
    raise RuntimeError("a pass that raises")

def on_echo(event):
    assoc = event.assoc
    say(event="echo", id=event.request.MessageID, inline=inline_dul.inline(assoc.dul),
        in_assoc_thread=threading.current_thread() is assoc, dul_thread_started=assoc.dul.ident is not None,
        dul_threads=sum(isinstance(t, DULServiceProvider) for t in threading.enumerate()))
    if event.request.MessageID == 7:  # from another thread, as -td's watchdog and shutdown do
        threading.Timer(0.2, abort_association, (assoc,)).start()
    if event.request.MessageID == 9:
        assoc.dul._is_transport_event = broken_pass
    return 0x0000

def on_end(event):
    say(event=event.event.name)
    threading.Thread(target=ended, args=(event.assoc,)).start()

def ended(assoc):
    assoc.join(5)
    say(event="ended", assoc_alive=assoc.is_alive(), dul_alive=assoc.dul.is_alive())

ae = build_ae(parse_args(["-ta", "5", sys.argv[1]]))
handlers = [(evt.EVT_C_ECHO, on_echo), (evt.EVT_RELEASED, on_end), (evt.EVT_ABORTED, on_end)]
server = ae.start_server(("127.0.0.1", int(sys.argv[1])), block=False, evt_handlers=handlers)
say(event="ready")
sys.stdin.read()
server.shutdown()
"""


@pytest.fixture
def receiver() -> Iterator[ScriptServer]:
    port = free_port()
    with ScriptServer.start(SERVER, port) as server:
        server.wait_for("ready")
        yield server


def _associate(port: int) -> Any:
    """A pynetdicom SCU association; ``assoc.pdus_received`` lists the PDU classes it got."""
    ae = AE()
    ae.add_requested_context(Verification)
    received: list[type] = []
    assoc = ae.associate(HOST, port, evt_handlers=[(evt.EVT_PDU_RECV, lambda event: received.append(type(event.pdu)))])
    assert assoc.is_established
    assoc.pdus_received = received
    return assoc


def _echo_then_aborted(port: int, msg_id: int) -> Any:
    """Send one C-ECHO whose ``msg_id`` makes the receiver end the association, and wait for the end."""
    assoc = _associate(port)
    assert assoc.send_c_echo(msg_id=msg_id).Status == 0x0000
    deadline = time.monotonic() + 10
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.01)
    assert assoc.is_aborted
    assert A_ABORT_RQ in assoc.pdus_received  # an A-ABORT on the wire, not a bare close
    return assoc


def test_a_receiver_association_has_no_dul_thread(receiver: ScriptServer) -> None:
    assoc = _associate(receiver.port)
    assert assoc.send_c_echo(msg_id=1).Status == 0x0000
    assoc.release()
    assert receiver.wait_for("echo") == {"event": "echo", "id": 1, "inline": True, "in_assoc_thread": True,
                                         "dul_thread_started": False, "dul_threads": 0}
    receiver.wait_for("EVT_RELEASED")
    assert receiver.wait_for("ended") == {"event": "ended", "assoc_alive": False, "dul_alive": False}
    assert assoc.is_released
    assert isinstance(assoc.dul, DULServiceProvider) and not assoc.dul.is_alive()  # the SCU's thread ran and ended


def test_many_messages_on_one_association(receiver: ScriptServer) -> None:
    assoc = _associate(receiver.port)
    statuses = [assoc.send_c_echo(msg_id=n).Status for n in range(100, 150)]
    assoc.release()
    assert statuses == [0x0000] * 50
    receiver.wait_for("EVT_RELEASED")
    assert [x["id"] for x in receiver.lines if x["event"] == "echo"] == list(range(100, 150))


def test_an_abort_from_another_thread_reaches_the_peer(receiver: ScriptServer) -> None:
    _echo_then_aborted(receiver.port, 7)
    receiver.wait_for("EVT_ABORTED")
    assert receiver.wait_for("ended") == {"event": "ended", "assoc_alive": False, "dul_alive": False}


def test_a_pass_that_raises_aborts_the_association(receiver: ScriptServer) -> None:
    _echo_then_aborted(receiver.port, 9)
    assert receiver.wait_for("echo")["id"] == 9


class _Pass:
    """The parts of a DUL that a pass looks at. ``pdus`` P-DATA are waiting, each read
    straight into DIMSE (:mod:`receiver.fastpdata`), leaving no state-machine event;
    ``mid_message``: they belong to a data set that is still incomplete after them."""

    def __init__(self, pdus: int, mid_message: bool = False) -> None:
        self._spool_stopped = self._kill_thread = False
        self.artim_timer = type("T", (), {"expired": False})()
        self._idle_timer = type("T", (), {"restart": lambda _: None})()
        self.event_queue: Any = queue.Queue()
        self.pdus, self.reads = pdus, 0
        self.waits: list[float] = []
        self._spool_deferred: list[Any] = []
        self._spool_wakeup = type("W", (), {"wait": lambda _, provider, timeout: self.waits.append(timeout)})()
        dimse = type("D", (), {"message": object() if mid_message else None})()
        self.assoc = type("A", (), {"dimse": dimse, "_kill": False})()

    def _process_recv_primitive(self) -> bool:
        return False

    def _is_transport_event(self) -> bool:
        if self.reads == self.pdus:
            return False
        self.reads += 1
        return True


@pytest.mark.parametrize("pdus", [1, 0])
def test_a_pass_that_read_a_pdu_counts_as_work(pdus: int) -> None:
    """A message completed by a pass is served before any wait: the pump waits only when
    the pass found nothing at all."""
    provider: Any = _Pass(pdus)
    assert inline_dul.step(provider) is bool(pdus)
    provider.reads = 0
    inline_dul.pump(provider, 0.05)
    assert (provider.reads, provider.waits) == ((1, []) if pdus else (0, [0.05]))


def test_the_pdus_of_an_incomplete_message_are_read_in_one_pump() -> None:
    """Mid data set the association has nothing to look at: the pump reads every PDU
    waiting, then waits once for more, instead of returning to its caller per PDU."""
    provider: Any = _Pass(32, mid_message=True)
    inline_dul.pump(provider, 0.05)
    assert (provider.reads, provider.waits) == (32, [0.05])


def test_deferred_calls_run_once_the_waiting_pdus_are_read_and_before_the_wait() -> None:
    """What an answer handed to :func:`inline_dul.defer` runs while the peer is silent:
    after the PDUs already waiting (the next request comes first), before the pump blocks."""
    provider: Any = _Pass(3, mid_message=True)
    seen: list[tuple[int, int]] = []
    provider._spool_deferred += [lambda: seen.append((provider.reads, len(provider.waits)))] * 2
    inline_dul.pump(provider, 0.05)
    assert (seen, provider._spool_deferred, provider.waits) == ([(3, 0), (3, 0)], [], [0.05])


def test_defer_on_a_thread_without_an_inline_dul_does_nothing() -> None:
    """The caller then does the work itself (the drop folder's thread, a test's SCU)."""
    called: list[int] = []
    assert inline_dul.defer(lambda: called.append(1)) is False
    assert called == []
