"""Answers sent by the association thread itself (an upstreamable patch, pynetdicom 3.0.4).

pynetdicom sends every PDU from the DUL thread: the association thread queues the
P-DATA primitive of a C-STORE-RSP, pokes the DUL thread awake, and that thread runs
state-machine action DT-1 (Sta6 -> Sta6), which encodes and sends it. Each answer
costs a thread hand-off (a wake-up, a GIL switch, two queue passes) while the sender
waits for it: with small objects that is a good part of the time per object.

In state Sta6, with nothing else queued for the DUL and no handler bound to the
events DT-1 would fire (``EVT_PDU_SENT``, ``EVT_DATA_SENT``, ``EVT_FSM_TRANSITION``),
:func:`install` lets ``send_pdu`` encode and send a P-DATA-TF PDU on the spot, as DT-1
would. Everything else (ACSE primitives, other states, a queue that is not empty, TLS
sockets, bound handlers) takes pynetdicom's own path.

Order and integrity on the wire: every send of the association, whether direct or
through DT-1, runs under one lock per DUL, and DT-1 holds it from taking its primitive
off the queue until it has sent it. A direct send checks the queue under that lock,
so it can never overtake a PDU queued before it, and two PDUs never interleave.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from pynetdicom import evt, fsm
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from receiver.fastpdata import plain_socket

# Events DT-1 fires: a direct send would skip them, so it is used only when none is bound.
_FIRED = (evt.EVT_PDU_SENT, evt.EVT_DATA_SENT, evt.EVT_FSM_TRANSITION)


def send_lock(provider: DULServiceProvider) -> threading.RLock:
    """The lock that orders every send of ``provider`` (made with the provider)."""
    return provider._spool_send_lock  # type: ignore[attr-defined, no-any-return]


def _direct_possible(provider: DULServiceProvider, primitive: Any) -> bool:
    return (type(primitive) is P_DATA and plain_socket(provider) is not None
            and threading.current_thread() is not provider
            and not any(provider.assoc.get_handlers(event) for event in _FIRED))


def _wrap_send_pdu(original: Callable[[DULServiceProvider, Any], None]) -> Callable[..., None]:
    def send_pdu(self: DULServiceProvider, primitive: Any) -> None:
        if _direct_possible(self, primitive):
            with send_lock(self):
                if self.to_provider_queue.empty() and self.state_machine.current_state == "Sta6":
                    self.socket.send(P_DATA_TF(primitive).encode())  # type: ignore[union-attr]
                    return
        original(self, primitive)

    send_pdu.pynetdicom = original  # type: ignore[attr-defined]
    return send_pdu


def _locked(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original(dul)`` (or ``original(dul, pdu)``) under the DUL's send lock."""
    def locked(dul: DULServiceProvider, *args: Any) -> Any:
        with send_lock(dul):
            return original(dul, *args)

    locked.pynetdicom = original  # type: ignore[attr-defined]
    return locked


def _wrap_init(original: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: DULServiceProvider, *args: Any, **kwargs: Any) -> None:
        self._spool_send_lock = threading.RLock()  # type: ignore[attr-defined]
        original(self, *args, **kwargs)

    __init__.pynetdicom = original  # type: ignore[attr-defined]
    return __init__


def install() -> None:
    """Patch pynetdicom once; calling again is harmless."""
    D = DULServiceProvider
    if hasattr(D.send_pdu, "pynetdicom"):
        return
    D.__init__ = _wrap_init(D.__init__)  # type: ignore[method-assign]
    D._send = _locked(D._send)  # type: ignore[method-assign]
    D.send_pdu = _wrap_send_pdu(D.send_pdu)  # type: ignore[method-assign]
    # DT-1 is looked up through the ACTIONS table when it runs: replace it there.
    description, action, state = fsm.ACTIONS["DT-1"]
    fsm.ACTIONS["DT-1"] = (description, _locked(action), state)
