"""storescp's test options ``--sleep-during``, ``--sleep-after``, ``--abort-during``, ``--abort-after``.

They let a site test how its senders cope with a slow or failing SCP (spec §2.8), so they
act where DCMTK's do, not in the C-STORE handler:

* ``--sleep-during s``: DCMTK sleeps in every progress callback while a data set arrives
  (at the start, for each PDV, at the end), so the wait happens while reading the network;
* ``--sleep-after s``: after the C-STORE-RSP is sent, before the next command is read;
* ``--abort-during``: A-ABORT at the first data set PDV; ``--abort-after``: A-ABORT once
  the data set is complete, before any response. Nothing is spooled or written, and unlike
  DCMTK no earlier file of the same name is deleted (README, "Differences").
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

from receiver.pynetdicom_fixes import abort_association, discard_partial, stop_receiving

log = logging.getLogger("spoolscp.receiver")

ABORT_INITIATED = "ABORT initiated (due to command line options)"
READ_PDV_FAILED = "0006:020c DIMSE Read PDV failed"
SEND_FAILED = "0006:020e DIMSE Failed to send message"
OUT_OF_RESOURCES = 0xA700  # what DCMTK puts in the response it never sends


@dataclass(frozen=True)
class TestOptions:
    sleep_during: int = 0
    sleep_after: int = 0
    abort_during: bool = False
    abort_after: bool = False

    @property
    def active(self) -> bool:
        return bool(self.sleep_during or self.sleep_after or self.abort_during or self.abort_after)


def _log_abort(condition: str) -> None:
    log.info(ABORT_INITIATED)
    log.error("Store SCP Failed: %s", condition)
    log.error("DIMSE failure (aborting association): %s", condition)


def _data_pdvs(primitive: P_DATA) -> list[bytes]:
    """The data set fragments of a P-DATA (message control header bit 0 clear)."""
    return [pdv for _, pdv in primitive.presentation_data_value_list if pdv and not pdv[0] & 0x01]


def _options(provider: DIMSEServiceProvider) -> TestOptions | None:
    return getattr(provider.assoc.ae, "storescp_tests", None)


def _abort_during(provider: DIMSEServiceProvider) -> None:
    """Abort from the network thread: drop the partial object, abort from another thread."""
    _log_abort(READ_PDV_FAILED)
    message, provider.message = provider.message, None
    discard_partial(message)
    stop_receiving(provider)
    threading.Thread(target=abort_association, args=(provider.assoc,), daemon=True).start()


def _sleep_during(tests: TestOptions, message: Any, pdvs: list[bytes]) -> None:
    """One sleep per PDV, plus DCMTK's "begin" and "end" callbacks."""
    callbacks = len(pdvs) + (1 if pdvs[-1][0] & 0x02 else 0)
    if not getattr(message, "_storescp_begun", False):
        message._storescp_begun = True
        callbacks += 1
    log.debug("sleeping %d s x %d during the store (--sleep-during)", tests.sleep_during, callbacks)
    time.sleep(tests.sleep_during * callbacks)


_previous_receive: Callable[..., None] | None = None
_previous_send: Callable[..., None] | None = None


def _receive_primitive(self: DIMSEServiceProvider, primitive: Any) -> None:
    tests = _options(self)
    if tests and isinstance(primitive, P_DATA) and isinstance(self.message, C_STORE_RQ):
        pdvs = _data_pdvs(primitive)
        if pdvs and tests.abort_during:
            return _abort_during(self)
        if pdvs and tests.sleep_during:
            _sleep_during(tests, self.message, pdvs)
    assert _previous_receive is not None
    return _previous_receive(self, primitive)


def _send_msg(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> None:
    assert _previous_send is not None
    _previous_send(self, primitive, context_id)
    tests = _options(self)
    if tests and tests.sleep_after and isinstance(primitive, C_STORE) and primitive.Status is not None:
        log.debug("sleeping %d s after the store (--sleep-after)", tests.sleep_after)
        time.sleep(tests.sleep_after)


def install(tests: TestOptions) -> None:
    """Hook what ``tests`` needs, each hook once (on top of :mod:`receiver.pynetdicom_fixes`):
    DIMSE receive for the options acting while a data set arrives, send for ``--sleep-after``.
    Without test options neither hook runs, so no P-DATA pays for them. A hook installed
    for one AE checks the options of each association's own AE."""
    global _previous_receive, _previous_send
    if (tests.sleep_during or tests.abort_during) and _previous_receive is None:
        _previous_receive = DIMSEServiceProvider.receive_primitive
        DIMSEServiceProvider.receive_primitive = _receive_primitive  # type: ignore[method-assign]
    if tests.sleep_after and _previous_send is None:
        _previous_send = DIMSEServiceProvider.send_msg
        DIMSEServiceProvider.send_msg = _send_msg  # type: ignore[method-assign]


def store_handler(store: Callable[[evt.Event], int], tests: TestOptions) -> Callable[[evt.Event], int]:
    """``--abort-after`` in front of the C-STORE handler: abort before anything is spooled."""
    if not tests.abort_after:
        return store

    def abort_after(event: evt.Event) -> int:
        _log_abort(SEND_FAILED)
        abort_association(event.assoc)
        return OUT_OF_RESOURCES

    return abort_after
