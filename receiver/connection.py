"""How storescp's connections behave around negotiation: AE titles, ``-ta``, ``-ts`` (spec §2.2, §2.3, §2.7).

Three places where pynetdicom's defaults differ from DCMTK in what a sender observes:

* RQ AE titles lose only trailing spaces (pynetdicom strips both ends), so the AC echo and
  the files' SourceApplicationEntityTitle keep a leading space;
* no A-ASSOCIATE-RQ within ``-ta``: the connection closes without a PDU and
  ``E: Receiving Association failed: 0006:031a DUL network read timeout`` is logged;
* an association idle longer than ``-ts`` is dropped without an A-ABORT;
* an even (or 0) presentation context ID is answered like any other, where pynetdicom's
  decoder raised in the network thread and left the peer without an answer.

The timeout patches act only for AEs built by :func:`receiver.server.build_ae` (they carry
a ``storescp_policy``); the AE title reading applies to every RQ the process decodes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_items import PresentationContextItemRQ
from pynetdicom.utils import decode_bytes

log = logging.getLogger("spoolscp.receiver")


def _ours(ae: object) -> bool:
    return getattr(ae, "storescp_policy", None) is not None


def _keeping_leading_spaces(prop: property) -> property:
    """An RQ AE title setter that drops only trailing spaces, as DCMTK does (spec §2.3).

    pynetdicom strips both ends, so an SCU calling as ``" X"`` would get ``"X"`` echoed in
    the AC (and in the files' meta). A value of spaces only still goes to pynetdicom's check.
    """
    def setter(self: A_ASSOCIATE_RQ, value: str | bytes | None) -> None:
        if isinstance(value, bytes) and value.strip(b" "):
            value = decode_bytes(value).rstrip(" ")
        prop.fset(self, value)  # type: ignore[misc]

    return property(prop.fget, setter, doc=prop.__doc__)


_original_run_reactor = Association.run_reactor


def _run_reactor(self: Association) -> None:
    """pynetdicom's reactor, plus DCMTK's error when no A-ASSOCIATE-RQ came within ``-ta``."""
    started = time.monotonic()
    _original_run_reactor(self)
    waited = time.monotonic() - started
    if (self.is_acceptor and self.requestor.primitive is None and self.acse_timeout is not None
            and waited >= self.acse_timeout and _ours(self.ae)):
        log.error("Receiving Association failed: 0006:031a DUL network read timeout")


_original_idle_expired = DULServiceProvider.idle_timer_expired


def _idle_timer_expired(self: DULServiceProvider) -> bool:
    """``-ts``: DCMTK's read times out and the connection is dropped, no A-ABORT is sent.

    Closing the socket here makes the DUL report a provider abort ("Association Aborted"),
    instead of pynetdicom's own reaction of sending an A-ABORT.
    """
    if not _original_idle_expired(self):
        return False
    if not _ours(self.assoc.ae):
        return True
    if self.socket is not None and self.socket.socket is not None:
        self.socket.close()
    return False


_original_rq_context = PresentationContextItemRQ.to_primitive


def _rq_context_to_primitive(self: PresentationContextItemRQ) -> Any:
    """pynetdicom's conversion, minus its odd-ID check (DCMTK accepts and echoes the ID)."""
    cid = self.presentation_context_id
    if cid is None or (1 <= cid <= 255 and cid % 2):
        return _original_rq_context(self)
    self.presentation_context_id = 1
    try:
        context = _original_rq_context(self)
    finally:
        self.presentation_context_id = cid
    context._context_id = cid
    return context


_RQ_AE_TITLES = {name: getattr(A_ASSOCIATE_RQ, name) for name in ("called_ae_title", "calling_ae_title")}


def install() -> None:
    """Patch once; calling again is harmless."""
    if Association.run_reactor is _run_reactor:
        return
    Association.run_reactor = _run_reactor  # type: ignore[method-assign]
    DULServiceProvider.idle_timer_expired = _idle_timer_expired  # type: ignore[method-assign]
    PresentationContextItemRQ.to_primitive = _rq_context_to_primitive  # type: ignore[method-assign]
    for name, prop in _RQ_AE_TITLES.items():
        setattr(A_ASSOCIATE_RQ, name, _keeping_leading_spaces(prop))
