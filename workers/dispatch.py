"""When an end-of-study step or a command may start: DCMTK's order, made durable.

storescp runs everything in one loop, so its commands start in a fixed order: the
``-xcr`` of an object, then (if that object ended a study) the rename and the
``-xcs`` of the study it ended. The tracker inserts ``eos`` and ``exec`` rows in
exactly that order; this module releases them to the workers in that order too:

* a row waits for its prerequisites: ``-xcr`` for its object to be written, an end of
  study for every object of its study, ``-xcs`` for its study's rename;
* a row starts only once every earlier row has started; a rename, and any command
  under ``-xs`` (``--exec-sync``), must also have finished before the next one starts.

>>> dispatch(db)          # doctest: +SKIP   returns the rows now queued, to enqueue
[17]
"""

from __future__ import annotations

import sqlite3

from spoolscp import jobs

TERMINAL = ("done", "failed")


def _prerequisites_met(c: sqlite3.Connection, kind: str, after_seq: int | None, study_id: int | None) -> bool:
    if after_seq is not None:
        state = c.execute("SELECT state FROM jobs WHERE seq = ?", (after_seq,)).fetchone()
        if state is None or state[0] not in TERMINAL:
            return False
    if study_id is not None and (kind == "eos" or after_seq is None):
        pending = c.execute(
            "SELECT count(*) FROM jobs WHERE kind = 'store' AND study_id = ? AND state NOT IN ('done', 'failed')",
            (study_id,),
        ).fetchone()[0]
        return pending == 0
    return True


UNFINISHED = tuple(state for state in jobs.STATES if state not in ("done", "failed"))


def _blocks_followers(kind: str, state: str, sync: int) -> bool:
    """Does a row in ``state`` hold back the rows after it?"""
    if state in ("waiting", "queued"):
        return True  # not started yet
    return kind == "eos" or bool(sync)  # must finish first


_ANY_WAITING = "SELECT 1 FROM jobs WHERE state = 'waiting' AND kind IN ('eos', 'exec') LIMIT 1"


def dispatch(db: jobs.JobDB) -> list[int]:
    """Move the rows that may start now from ``waiting`` to ``queued``; return them.

    Every job ends with this pass; without any waiting row (no end of study or command
    pending, the common case) a read-only check ends it, with no write lock taken. A row
    that starts waiting after that check is the tracker's, whose process dispatches next.
    """
    if not db.execute(_ANY_WAITING):
        return []
    ready = []
    with db.transaction() as c:
        rows = c.execute(  # state IN (...), not NOT IN: the (state, kind) index, no table scan per job
            "SELECT seq, kind, state, sync, after_seq, study_id FROM jobs"
            f" WHERE kind IN ('eos', 'exec') AND state IN ({', '.join('?' for _ in UNFINISHED)}) ORDER BY seq",
            UNFINISHED,
        ).fetchall()
        for seq, kind, state, sync, after_seq, study_id in rows:
            if state == "waiting":
                if not _prerequisites_met(c, kind, after_seq, study_id):
                    break
                c.execute("UPDATE jobs SET state = 'queued' WHERE seq = ?", (seq,))
                ready.append(seq)
                state = "queued"
            if _blocks_followers(kind, state, sync):
                break
    return ready
