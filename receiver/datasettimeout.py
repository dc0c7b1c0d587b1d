"""``-td``: DCMTK's DIMSE timeout applies only while a C-STORE data set arrives (spec §2.7).

pynetdicom's ``dimse_timeout`` does nothing for an acceptor waiting on data, so the timer is
kept here: it starts when a C-STORE command is complete and restarts with every P-DATA while
the data set is incomplete. On expiry storescp logs ``Store SCP Failed``, sends no response,
and the association ends in an abort (DCMTK aborts when the rest of the data set arrives;
spoolscp aborts at once, which the sender sees the same way: no response, A-ABORT).
Nothing of the object is kept.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.pdu_primitives import P_DATA

from receiver.pynetdicom_fixes import abort_association, discard_partial

log = logging.getLogger("spoolscp.receiver")

NO_DATA = "0006:0207 DIMSE No data available (timeout in non-blocking mode)"

_previous_receive: Callable[..., None] | None = None


def _expired(provider: DIMSEServiceProvider, message: Any) -> None:
    if provider.message is not message:  # completed (or replaced) meanwhile
        return
    log.error("Store SCP Failed: %s", NO_DATA)
    log.error("DIMSE failure (aborting association): %s", NO_DATA)
    provider.message = None
    discard_partial(message)
    provider._storescp_aborted = True  # type: ignore[attr-defined] - later P-DATA is dropped
    abort_association(provider.assoc)


def _receive_primitive(self: DIMSEServiceProvider, primitive: Any) -> None:
    assert _previous_receive is not None
    _previous_receive(self, primitive)
    timeout = getattr(self.assoc.ae, "storescp_dataset_timeout", None)
    if not timeout or not isinstance(primitive, P_DATA):
        return
    timer = getattr(self, "_storescp_dataset_timer", None)
    if timer is not None:
        timer.cancel()
    if isinstance(self.message, C_STORE_RQ) and not getattr(self, "_storescp_aborted", False):
        timer = threading.Timer(timeout, _expired, (self, self.message))
        timer.daemon = True
        timer.start()
        self._storescp_dataset_timer = timer  # type: ignore[attr-defined]


def install() -> None:
    """Hook DIMSE receive once; the AE's ``storescp_dataset_timeout`` (seconds) turns it on."""
    global _previous_receive
    if _previous_receive is None:
        _previous_receive = DIMSEServiceProvider.receive_primitive
        DIMSEServiceProvider.receive_primitive = _receive_primitive  # type: ignore[method-assign]
