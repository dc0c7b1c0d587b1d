"""The workers' wake-ups, sent once the answer is out instead of before it.

A Huey message only wakes a worker; the committed job row is what makes an object
safe (a row without a message is found by the reconciler). Sending it costs a
serialisation and an SQLite transaction that the C-STORE response need not wait for.
:class:`AfterAnswer` hands it to the association thread for the moment it next waits
for the sender (:func:`receiver.inline_dul.defer`): the sender prepares its next
request meanwhile. A thread of its own did the same, but fighting the association
thread for the GIL cost the receiver about 400 us of CPU per object (five context
switches per message), more than the message itself (about 55 us).
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

from receiver import inline_dul

log = logging.getLogger("spoolscp.receiver")


class AfterAnswer:
    """``enqueue(seq)`` that never raises: deferred on an association's thread until its
    answer is out, sent at once on any other thread (the drop folder's)."""

    def __init__(self, enqueue: Callable[[int], None]) -> None:
        self._enqueue = enqueue

    def __call__(self, seq: int) -> None:
        if not inline_dul.defer(functools.partial(self._send, seq)):
            self._send(seq)

    def _send(self, seq: int) -> None:
        try:
            self._enqueue(seq)
        except Exception as exc:  # noqa: BLE001 - the job row is the truth; the reconciler re-queues
            log.warning("could not enqueue job %d (the workers' reconciler will pick it up): %s", seq, exc)
