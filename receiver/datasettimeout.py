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
import time
from typing import Any, Callable

from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ

from receiver.pynetdicom_fixes import abort_association, discard_partial, stop_receiving

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
    stop_receiving(provider)
    abort_association(provider.assoc)


class Watchdog:
    """The deadlines of every data set being received, watched by one thread.

    A timer restarted by every P-DATA would be one thread per PDU (4,096 for a 64 MB
    object): here a P-DATA only moves its data set's deadline, under a lock, and the
    thread, started with the first deadline, sleeps until the earliest one.
    """

    def __init__(self, expired: Callable[[DIMSEServiceProvider, Any], None]) -> None:
        self._expired = expired
        self._due: dict[DIMSEServiceProvider, tuple[Any, float]] = {}  # provider -> (message, deadline)
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, provider: DIMSEServiceProvider, message: Any, timeout: float) -> None:
        """``message`` (being received by ``provider``) expires ``timeout`` s from now."""
        with self._changed:
            earlier = provider not in self._due
            self._due[provider] = (message, time.monotonic() + timeout)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dataset-timeout", daemon=True)
                self._thread.start()
            elif earlier:  # a new deadline may come before the one the thread sleeps to
                self._changed.notify()

    def forget(self, provider: DIMSEServiceProvider) -> None:
        with self._changed:
            self._due.pop(provider, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                late = [(p, m) for p, (m, deadline) in self._due.items() if deadline <= now]
                for provider, _ in late:
                    del self._due[provider]
                if not late:
                    self._changed.wait(min((d for _, d in self._due.values()), default=now + 60) - now)
            for provider, message in late:
                self._expired(provider, message)


_watchdog = Watchdog(_expired)


def _receive_primitive(self: DIMSEServiceProvider, primitive: Any) -> None:
    assert _previous_receive is not None
    _previous_receive(self, primitive)
    timeout = getattr(self.assoc.ae, "storescp_dataset_timeout", None)
    if not timeout:
        return
    if isinstance(self.message, C_STORE_RQ):
        _watchdog.watch(self, self.message, timeout)
    else:
        _watchdog.forget(self)


def install(timeout: float | None) -> None:
    """Hook DIMSE receive once if ``timeout`` (``-td``, seconds) is set: without ``-td`` no
    P-DATA pays for the hook. The hook reads each AE's ``storescp_dataset_timeout``."""
    global _previous_receive
    if timeout and _previous_receive is None:
        _previous_receive = DIMSEServiceProvider.receive_primitive
        DIMSEServiceProvider.receive_primitive = _receive_primitive  # type: ignore[method-assign]
