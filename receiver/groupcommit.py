"""Group commit of received objects: one job-table commit for every object that
concurrent associations have ready at the same moment.

Each association thread hands its job row to :meth:`GroupCommit.record` and blocks
until the row is durable. Whoever gets the commit lock takes every row waiting at
that moment and commits them in one durable transaction; the others find their row
committed when the lock comes to them. One association alone pays what it paid
before (no extra thread, no hand-off); four pay one commit between them.

A row is handed over only once its spool file and the file's folder entry are durable
(``spoolscp.spool.commit`` with ``receiver.foldersync``), or with the spool file's bytes,
which its commit stores in the job table (small objects): a row that is durable always
names a spool file that is. The transaction's own fsync (of the WAL,
``spoolscp.walsync``) happens after SQLite's write lock is released, so ``--fork``
receiver processes and workers commit while this one waits for the disk, and their
fsyncs overlap instead of queueing.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from spoolscp import jobs


@dataclass
class _Slot:
    row: dict[str, Any]
    data: bytes | None  # the spool file's bytes when the job table holds them
    seq: int | None = None
    error: BaseException | None = None


class GroupCommit:
    """Durable ``store`` job rows, several per fsync when several are waiting."""

    def __init__(self, db: jobs.JobDB) -> None:
        self.db = db
        self._waiting: list[_Slot] = []
        self._waiting_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def record(self, fields: dict[str, Any], data: bytes | None = None) -> int:
        """Record a received object and return its seq, once the row is durable; raises
        what the commit raised (and then, unless it is ``UnsyncedCommit``, nothing of the
        batch is recorded).

        The object's spool file is either durable already (with its folder entry) or
        ``data``, which the same commit stores in the job table.
        """
        slot = _Slot(dict(fields, kind="store", state="queued"), data)
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
            with self.db.transaction() as conn:
                seqs = [_insert(conn, slot) for slot in batch]
        except BaseException as exc:  # every waiter must learn the outcome, whatever it is
            for slot in batch:
                slot.error = exc
            raise
        for slot, seq in zip(batch, seqs):
            slot.seq = seq


def _insert(conn: sqlite3.Connection, slot: _Slot) -> int:
    seq = jobs.insert(conn, slot.row)
    if slot.data is not None:
        jobs.insert_spool_data(conn, seq, slot.data)
    return seq
