"""Group commit of received objects: one spool-folder fsync and one job-table commit
for every object that concurrent associations have ready at the same moment.

Each association thread hands its job row to :meth:`GroupCommit.record` and blocks
until the row is durable. Whoever gets the commit lock takes every row waiting at
that moment, fsyncs the spool folder once (the renames of all their files) and
commits the rows in one durable transaction; the others find their row committed
when the lock comes to them. One association alone pays what it paid before (no
extra thread, no hand-off); four pay one commit between them.

The folder fsync comes first: a row that is durable always names a spool file that
is. The transaction's own fsync (of the WAL, ``spoolscp.walsync``) happens after
SQLite's write lock is released, so ``--fork`` receiver processes and workers commit
while this one waits for the disk, and their fsyncs overlap instead of queueing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spoolscp import jobs
from spoolscp.spool import fsync_dir


@dataclass
class _Slot:
    row: dict[str, Any]
    seq: int | None = None
    error: BaseException | None = None


class GroupCommit:
    """Durable ``store`` job rows, several per fsync when several are waiting."""

    def __init__(self, db: jobs.JobDB, spool_dir: Path) -> None:
        self.db = db
        self.spool_dir = spool_dir
        self._waiting: list[_Slot] = []
        self._waiting_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def record(self, fields: dict[str, Any]) -> int:
        """Record a received object (its spool file already fsynced) and return its seq.

        Returns only once the row is committed and the folder entry of its spool file is
        durable; raises what the commit raised, and then nothing of the batch is recorded.
        """
        slot = _Slot(dict(fields, kind="store", state="queued"))
        with self._waiting_lock:
            self._waiting.append(slot)
        with self._commit_lock:
            if slot.seq is None and slot.error is None:
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                self._commit(batch)
        if slot.error is not None:
            raise slot.error
        assert slot.seq is not None
        return slot.seq

    def _commit(self, batch: list[_Slot]) -> None:
        try:
            fsync_dir(self.spool_dir)
            with self.db.transaction() as conn:
                seqs = [jobs.insert(conn, slot.row) for slot in batch]
        except BaseException as exc:  # every waiter must learn the outcome, whatever it is
            for slot in batch:
                slot.error = exc
            raise
        for slot, seq in zip(batch, seqs):
            slot.seq = seq
