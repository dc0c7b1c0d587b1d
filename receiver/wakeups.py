"""The workers' wake-ups, sent from a thread of their own instead of before the answer.

A Huey message only wakes a worker; the committed job row is what makes an object
safe (a row without a message is found by the reconciler). Sending it costs the
C-STORE handler a serialisation and an SQLite transaction before the answer could
go out; :class:`BackgroundEnqueue` takes the sequence number, lets the answer go, and
sends the messages in order while the association waits for the sender's next PDU.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger("spoolscp.receiver")


class BackgroundEnqueue:
    """``enqueue(seq)`` that returns at once; :meth:`close` sends what is left."""

    def __init__(self, enqueue: Callable[[int], None]) -> None:
        self._enqueue = enqueue
        self._pending: "queue.SimpleQueue[int | None]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="wakeups", daemon=True)
        self._thread.start()

    def __call__(self, seq: int) -> None:
        self._pending.put(seq)

    def _run(self) -> None:
        while (seq := self._pending.get()) is not None:
            try:
                self._enqueue(seq)
            except Exception as exc:  # noqa: BLE001 - the job row is the truth; the reconciler re-queues
                log.warning("could not enqueue job %d (the workers' reconciler will pick it up): %s", seq, exc)

    def close(self) -> None:
        """Send every wake-up still waiting, then stop."""
        self._pending.put(None)
        self._thread.join()
