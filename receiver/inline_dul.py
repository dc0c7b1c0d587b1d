"""One thread per association: the receiver's DUL runs inside its association thread.

pynetdicom 3.0.4 gives every association two threads. The DUL thread reads each PDU,
runs the state machine and hands what it decoded to the association thread through a
queue; the association thread answers through another queue back to the DUL thread.
Every hand-off is a wake-up and a GIL switch: an echo association cost the receiver 44
context switches and 123 futex calls (17 and 54 with this module), and each C-STORE one
more round trip.

For the receiver's own associations (acceptor, an AE built by
:func:`receiver.server.build_ae`, plain socket) :func:`install` starts no DUL thread.
"The association thread" is the one that runs the association's reactor: its own, or
the pooled thread that accepted it (:mod:`receiver.acceptpool`).
The association thread runs the DUL loop's passes itself (:func:`step`, one pass of
``DULServiceProvider.run_reactor`` without its sleep) wherever it would have waited for
that thread (:func:`pump`): in its reactor's idle wait, in ``kill``, while waiting for
the A-ASSOCIATE-RQ, and in :func:`wait` (used by the receiver's own abort). What each
pass does is unchanged, in the same order: queued primitives first, then the socket,
then one state-machine event.

Work the association thread should do after its answer is out, but before it next
reads, is handed to :func:`defer`: it runs when the thread next waits for its peer, so
it fills the time the sender takes for its next request, and at the association's end.

Other threads (``-td``'s watchdog, shutdown) never run a pass: what they queue pokes the
association thread's wait, and ``stop_dul`` from them only asks the association thread
to stop its DUL. pynetdicom's requestor associations (the tests' SCUs) keep both threads.
"""

from __future__ import annotations

import functools
import logging
import queue
import time
from typing import Any, Callable

from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ

from receiver import reactor_wakeups
from receiver.acceptpool import current_association, runs_here
from receiver.fastpdata import plain_socket

LOGGER = logging.getLogger("pynetdicom.dul")

WIND_DOWN_PASSES = 100  # at most, after the reactor ended: a peer still sending cannot hold the thread

_original = {name: getattr(DULServiceProvider, name) for name in ("start", "is_alive", "stop_dul", "receive_pdu")}


def inline(provider: DULServiceProvider) -> bool:
    """True if ``provider``'s passes run in its association's thread."""
    return "_spool_pump" in provider.__dict__


def _ours(provider: DULServiceProvider) -> bool:
    assoc = provider.assoc
    return (assoc.is_acceptor and getattr(assoc.ae, "storescp_policy", None) is not None
            and plain_socket(provider) is not None and runs_here(assoc))


def _start(self: DULServiceProvider) -> None:
    if not _ours(self):
        return _original["start"](self)
    self._spool_pump = functools.partial(pump, self)  # what reactor_wakeups' waits run instead
    self._spool_stopped = False
    self._spool_deferred = []
    self._idle_timer.start()
    self.assoc._dul_ready.set()
    return None


def _stop(provider: DULServiceProvider) -> None:
    provider._spool_stopped = True
    provider._spool_wakeup.close()
    _run_deferred(provider)


def defer(call: Callable[[], None]) -> bool:
    """Run ``call`` (which must not raise) when this association thread next waits for its
    peer; False, and nothing done, on any other thread.

    For what an answer should not wait for, yet what must not lag behind the association:
    the calls run in order, before the thread blocks and, at the latest, at its end.
    """
    assoc = current_association()
    provider = None if assoc is None else assoc.dul
    if provider is None or not inline(provider) or provider._spool_stopped:
        return False
    provider._spool_deferred.append(call)
    return True


def _run_deferred(provider: DULServiceProvider) -> None:
    calls = provider._spool_deferred
    while calls:
        calls.pop(0)()


def step(provider: DULServiceProvider) -> bool:
    """One pass of the DUL loop, in the association thread; True if it did anything (a
    P-DATA that :mod:`receiver.fastpdata` gave DIMSE directly leaves no event)."""
    if provider._spool_stopped:
        return False
    if provider._kill_thread:
        _stop(provider)
        return False
    if provider.artim_timer.expired:
        provider.event_queue.put("Evt18")
    try:
        worked = provider._process_recv_primitive()
        if not worked and provider._is_transport_event():
            provider._idle_timer.restart()
            worked = True
    except Exception as exc:  # noqa: BLE001 - as the DUL loop: abort, bypassing the state machine
        _abort_broken(provider, exc)
        return False
    try:
        event = provider.event_queue.get(block=False)
    except queue.Empty:
        return worked
    provider.state_machine.do_action(event)
    return True


def _abort_broken(provider: DULServiceProvider, exc: Exception) -> None:
    """What pynetdicom's DUL loop does when a pass raises: A-ABORT and a hard stop."""
    LOGGER.error("Exception in DUL.run(), aborting association")
    LOGGER.exception(exc)
    abort = A_ABORT_RQ()
    abort.source, abort.reason_diagnostic = 0x02, 0x00
    try:
        provider.socket.send(abort.encode())  # type: ignore[union-attr]
    finally:
        assoc = provider.assoc
        assoc.is_aborted, assoc.is_established, assoc._kill = True, False, True
        provider._kill_thread = True
        _stop(provider)


def pump(provider: DULServiceProvider, timeout: float) -> None:
    """Passes until one leaves the association something to look at; if a pass finds
    nothing, wait up to ``timeout`` for the socket or a poke, once.

    While a DIMSE message is incomplete (the P-DATA of a data set) nothing can be for the
    association yet, so the passes go on: the association's own loop runs once per
    message, not once per PDU (32 for a 512 KB object)."""
    assoc, waited = provider.assoc, False
    while not provider._spool_stopped:
        if step(provider):
            if assoc.dimse.message is None or assoc._kill:
                return
        elif waited:
            return
        else:
            _run_deferred(provider)
            provider._spool_wakeup.wait(provider, timeout)
            waited = True


def wait(assoc: Any, seconds: float) -> None:
    """``time.sleep(seconds)`` for a thread that waits for the DUL: on the association's
    own thread of an inline DUL, the DUL runs meanwhile."""
    provider = assoc.dul
    if inline(provider) and runs_here(assoc):
        pump(provider, seconds)
    else:
        time.sleep(seconds)


def _is_alive(self: DULServiceProvider) -> bool:
    if inline(self):
        return not self._spool_stopped
    return _original["is_alive"](self)


def _stop_dul(self: DULServiceProvider) -> bool:
    """Stop in Sta1. From another thread: ask the association thread, which stops at its
    next pass (``kill`` asks again until it has)."""
    if not inline(self):
        return _original["stop_dul"](self)
    if self.state_machine.current_state != "Sta1":
        return False
    self._kill_thread = True
    if runs_here(self.assoc):
        _stop(self)
        return True
    self._spool_wakeup.poke()
    return self._spool_stopped


def _receive_pdu(self: DULServiceProvider, wait: bool = False, timeout: float | None = None) -> Any:
    """A blocking receive on the association thread runs the DUL until something came."""
    if wait and inline(self) and runs_here(self.assoc):
        deadline = None if timeout is None else time.monotonic() + timeout
        cap = reactor_wakeups.IDLE_WAIT  # the timers are looked at after each pass
        while not self.to_user_queue.queue and not self._spool_stopped:
            left = cap if deadline is None else min(cap, deadline - time.monotonic())
            if left <= 0:
                break
            pump(self, left)
        wait = False
    return _original["receive_pdu"](self, wait, timeout)


def _wrap_run_reactor(original: Callable[[Association], None]) -> Callable[..., None]:
    def run_reactor(self: Association) -> None:
        """The association's reactor; then what the DUL still has to do with the closed
        connection (its Evt17), and its end."""
        try:
            original(self)
        finally:
            provider = self.dul
            if inline(provider) and not provider._spool_stopped:
                for _ in range(WIND_DOWN_PASSES):
                    if not step(provider):
                        break
                _stop(provider)

    run_reactor.inline_dul = True  # type: ignore[attr-defined]
    return run_reactor


def install() -> None:
    """Patch pynetdicom once; calling again is harmless."""
    if hasattr(Association.run_reactor, "inline_dul"):
        return
    D = DULServiceProvider
    D.start, D.is_alive, D.stop_dul, D.receive_pdu = _start, _is_alive, _stop_dul, _receive_pdu  # type: ignore[method-assign]
    Association.run_reactor = _wrap_run_reactor(Association.run_reactor)  # type: ignore[method-assign]
