"""Send the A-ASSOCIATE-AC bytes of an answer given before (an upstreamable patch to
pynetdicom 3.0.4's state-machine action AE-7).

For every association AE-7 builds an ``A_ASSOCIATE_AC`` PDU object from the AC primitive
(each item converted and validated again) and encodes it: about 5% of the receiver's
CPU for an association that sends one C-ECHO. A modality that opens one association
per object gets the same answer every time.

The acceptor (:mod:`receiver.acceptor`) builds its AC primitive from a few inputs; it
calls :func:`attach` with the primitive and those inputs as the key. The bytes for a
key are pynetdicom's own encoding of the first primitive seen with it, and AE-7 sends
them as they are. AE-7 is pynetdicom's own when the primitive carries no bytes (any
other acceptor, or an encoding that raised: the error then surfaces where it always
did), when a handler is bound to ``EVT_PDU_SENT`` (which wants the PDU object, e.g.
pynetdicom's ``-d`` log) or when the connection is gone.
"""

from __future__ import annotations

from collections.abc import Hashable

from pynetdicom import evt, fsm
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ASSOCIATE_AC
from pynetdicom.pdu_primitives import A_ASSOCIATE

CACHE_LIMIT = 1024  # distinct answers remembered; more and the memory starts again empty

_encoded: dict[Hashable, bytes] = {}
_original_ae_7 = fsm.AE_7


def attach(primitive: A_ASSOCIATE, key: Hashable) -> None:
    """Give ``primitive`` the AC bytes for ``key`` (everything the primitive is made of)."""
    encoded = _encoded.get(key)
    if encoded is None:
        try:
            encoded = A_ASSOCIATE_AC(primitive).encode()
        except Exception:  # noqa: BLE001 - AE-7 then encodes it and fails as it always did
            return
        if len(_encoded) >= CACHE_LIMIT:
            _encoded.clear()
        _encoded[key] = encoded
    primitive._spool_encoded = encoded  # type: ignore[attr-defined]


def _ae_7(dul: DULServiceProvider) -> str:
    """AE-7 (Sta3 + Evt7): send the A-ASSOCIATE-AC, from its remembered bytes if it has them."""
    queued = dul.to_provider_queue.queue
    encoded = getattr(queued[0], "_spool_encoded", None) if queued else None
    if encoded is None or dul.socket is None or dul.assoc.get_handlers(evt.EVT_PDU_SENT):
        return _original_ae_7(dul)
    dul.to_provider_queue.get(False)
    dul.socket.send(encoded)
    return "Sta6"


def install() -> None:
    """Patch once; calling again is harmless."""
    description, action, state = fsm.ACTIONS["AE-7"]
    if action is _original_ae_7:
        fsm.ACTIONS["AE-7"] = (description, _ae_7, state)
