"""Durable transactions that fsync the WAL outside SQLite's write lock (spoolscp.walsync).

A power cut cannot be staged here; what makes a commit durable is that the WAL bytes it
wrote are fdatasynced before the transaction returns, so that is what these tests watch
(the size of the WAL at its sync), together with the point of the change: the write
lock is free while the sync runs. SIGKILL of concurrent committing processes must lose
no acknowledged row.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from receiver.groupcommit import GroupCommit
from spoolscp import jobs, walsync

REPO = Path(__file__).resolve().parents[1]


def received(i: int) -> dict:
    return {"spool": f"{i}.dcm", "received_at": time.time(), "sop_instance": f"1.2.{i}", "options": {}}


def watch_syncs(db_path: Path, monkeypatch) -> list[tuple[int, bool]]:
    """Every WAL fdatasync from now on: (WAL size at the sync, could another writer begin?)."""
    synced: list[tuple[int, bool]] = []
    real = os.fdatasync

    def watching(fd: int) -> None:
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            free = True
        except sqlite3.OperationalError:
            free = False
        finally:
            other.close()
        synced.append((os.fstat(fd).st_size, free))
        real(fd)

    monkeypatch.setattr(walsync.os, "fdatasync", watching)
    return synced


def test_a_commit_returns_after_its_wal_bytes_are_synced_and_the_lock_is_free_meanwhile(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    db = jobs.JobDB(tmp_path / "jobs.db")
    wal = tmp_path / "jobs.db-wal"
    synced = watch_syncs(tmp_path / "jobs.db", monkeypatch)
    for i in range(3):
        with db.transaction() as c:
            assert c.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: COMMIT does not fsync
            jobs.insert(c, dict(received(i), kind="store", state="queued"))
        assert synced and synced[-1] == (wal.stat().st_size, True)
    assert len(synced) == 3
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again for single statements


def test_a_workers_outcome_is_synced_outside_the_lock(tmp_path: Path, monkeypatch) -> None:
    """done, failed and handed back: each durable on return, none holding the lock over its flush."""
    db = jobs.JobDB(tmp_path / "jobs.db")
    seqs = [jobs.record_received(db, received(i)) for i in range(3)]
    synced = watch_syncs(tmp_path / "jobs.db", monkeypatch)
    for seq, outcome in zip(seqs, (lambda s: jobs.mark_done(db, s), lambda s: jobs.mark_error(db, s, "x", True),
                                   lambda s: jobs.release(db, s))):
        jobs.claim(db, seq)
        outcome(seq)
        assert synced[-1] == ((tmp_path / "jobs.db-wal").stat().st_size, True)
    assert len(synced) == 3
    assert [jobs.get_job(db, s).state for s in seqs] == ["done", "failed", "queued"]


def test_a_claim_commits_without_any_sync(tmp_path: Path, monkeypatch) -> None:
    db = jobs.JobDB(tmp_path / "jobs.db")
    seq = jobs.record_received(db, received(0))
    calls: list[int] = []
    monkeypatch.setattr(walsync.os, "fdatasync", calls.append)
    assert jobs.claim(db, seq) is not None
    assert calls == []


def held_object(db: jobs.JobDB, i: int) -> int:
    """A queued store job whose spool data is held in the table, as the receiver records
    an object of up to ``spool_in_db_max``."""
    with db.transaction() as c:
        seq = jobs.insert(c, dict(received(i), kind="store", state="queued"))
        jobs.insert_spool_data(c, seq, b"held object")
    return seq


def test_a_held_objects_done_mark_is_not_synced_and_a_spool_files_is(tmp_path: Path, monkeypatch) -> None:
    """A held object's data goes with its done mark: a power cut loses both and the job is
    redone from the data. A spool file is removed after the mark: that one is synced."""
    db = jobs.JobDB(tmp_path / "jobs.db")
    held, filed = held_object(db, 0), jobs.record_received(db, received(1))
    synced = watch_syncs(tmp_path / "jobs.db", monkeypatch)
    jobs.claim(db, held)
    assert jobs.mark_done(db, held) is True
    assert synced == []
    assert jobs.get_job(db, held).state == "done" and jobs.spool_data(db, held) is None
    jobs.claim(db, filed)
    assert jobs.mark_done(db, filed) is False
    assert synced == [((tmp_path / "jobs.db-wal").stat().st_size, True)]


@pytest.mark.parametrize("kind", ["eos", "exec"])
def test_claiming_a_step_that_acts_on_outputs_makes_earlier_done_marks_durable(tmp_path: Path, monkeypatch,
                                                                              kind: str) -> None:
    """An end-of-study rename or a command must not run while the done mark of an object it
    acts on could still be lost: a redo would write that object again, at the old place."""
    db = jobs.JobDB(tmp_path / "jobs.db")
    stored = held_object(db, 0)
    with db.transaction() as c:
        step = jobs.insert(c, {"kind": kind, "state": "queued", "received_at": time.time(), "options": {}})
    synced = watch_syncs(tmp_path / "jobs.db", monkeypatch)
    jobs.claim(db, stored)
    jobs.mark_done(db, stored)
    assert synced == []
    assert jobs.claim(db, step) is not None
    assert synced == [((tmp_path / "jobs.db-wal").stat().st_size, True)]  # every frame so far, the mark's too


def test_the_folder_is_synced_once_per_wal_file(tmp_path: Path, monkeypatch) -> None:
    db = jobs.JobDB(tmp_path / "jobs.db")
    folders: list[Path] = []
    monkeypatch.setattr(walsync, "fsync_dir", folders.append)
    for i in range(3):
        with db.transaction() as c:
            jobs.insert(c, dict(received(i), kind="store", state="queued"))
    assert folders == [tmp_path]


def test_a_failed_wal_sync_is_reported_as_an_unsynced_commit(tmp_path: Path, monkeypatch) -> None:
    gc = GroupCommit(jobs.JobDB(tmp_path / "jobs.db"))

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(walsync.os, "fdatasync", failing)
    with pytest.raises(walsync.UnsyncedCommit):
        gc.record(received(0))
    # committed (a worker may write it: at least once), but never reported as durable
    assert gc.db.execute("SELECT count(*) FROM jobs")[0][0] == 1


COMMITTER = """
import sys, time
from pathlib import Path
from receiver.groupcommit import GroupCommit
from spoolscp import jobs
gc = GroupCommit(jobs.JobDB(Path(sys.argv[1])))
for i in range(100000):
    seq = gc.record({"spool": f"{sys.argv[2]}-{i}.dcm", "received_at": time.time(), "options": {}})
    print(seq, f"{sys.argv[2]}-{i}.dcm", flush=True)
"""


def test_rows_acknowledged_by_two_committing_processes_survive_their_sigkill(tmp_path: Path) -> None:
    jobs.JobDB(tmp_path / "jobs.db").close()  # schema first, so both start writing at once
    procs = [subprocess.Popen([sys.executable, "-c", COMMITTER, str(tmp_path / "jobs.db"), name],
                              stdout=subprocess.PIPE, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
             for name in ("a", "b")]
    acknowledged: list[tuple[int, str]] = []
    try:
        for proc in procs:  # each has acknowledged 200 rows while the other commits too
            for _ in range(200):
                seq, name = proc.stdout.readline().split()
                acknowledged.append((int(seq), name))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait(10)
    for proc in procs:  # what was printed before the kill was acknowledged too
        acknowledged += [(int(seq), name) for seq, name in (line.split() for line in proc.stdout if line.strip())]
    db = jobs.JobDB(tmp_path / "jobs.db")
    rows = dict(db.execute("SELECT seq, spool FROM jobs"))
    assert all(rows.get(seq) == name for seq, name in acknowledged)
    assert len({seq for seq, _ in acknowledged}) == len(acknowledged) >= 400
    assert {name[0] for _, name in acknowledged} == {"a", "b"}


def test_a_block_that_changed_nothing_and_a_publish_do_not_sync(tmp_path: Path, monkeypatch) -> None:
    """Every job runs a dispatch and a tracking pass that mostly find nothing, and a
    publish whose record mark_done's sync makes durable: none of them flushes."""
    db = jobs.JobDB(tmp_path / "jobs.db")
    seq = jobs.record_received(db, received(0))
    synced = watch_syncs(tmp_path / "jobs.db", monkeypatch)
    with db.transaction() as c:
        c.execute("SELECT count(*) FROM jobs").fetchone()
        c.execute("UPDATE jobs SET state = 'queued' WHERE seq = -1")  # matches nothing
    moved: list[int] = []
    assert jobs.publish(db, seq, tmp_path / "out", lambda: moved.append(seq))
    assert synced == [] and moved == [seq]
    with db.transaction() as c:
        c.execute("UPDATE jobs SET state = 'queued' WHERE seq = ?", (seq,))
    assert synced == [((tmp_path / "jobs.db-wal").stat().st_size, True)]


def test_a_workers_connection_needs_no_pragma_and_syncs_every_write(tmp_path: Path, monkeypatch) -> None:
    """``direct_writes=False`` stays at NORMAL for good; transactions and writes through
    execute are still synced before they return, reads are not."""
    db = jobs.JobDB(tmp_path / "jobs.db", direct_writes=False)
    synced = watch_syncs(tmp_path / "jobs.db", monkeypatch)
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    with db.transaction() as c:
        jobs.insert(c, dict(received(0), kind="store", state="queued"))
    assert synced[-1] == ((tmp_path / "jobs.db-wal").stat().st_size, True)
    db.execute("UPDATE jobs SET state = 'done'")
    assert len(synced) == 2 and synced[-1][0] == (tmp_path / "jobs.db-wal").stat().st_size
    assert db.execute("SELECT state FROM jobs") == [("done",)] and len(synced) == 2
    with db.transaction(fsync=False) as c:
        c.execute("UPDATE jobs SET state = 'queued'")
    assert len(synced) == 2
    assert not [s for s in seen if s.lstrip().upper().startswith("PRAGMA")]
    assert db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_the_receivers_rows_are_synced_on_its_steady_connection(tmp_path: Path, monkeypatch) -> None:
    """The receiver's connection is steady too (``direct_writes=False``): an ``--ignore``
    row, which ``-xcr`` will act on, is synced before it returns like a stored object's;
    an association's end is not (``record_assoc_end``)."""
    db = jobs.JobDB(tmp_path / "jobs.db", direct_writes=False)
    synced = watch_syncs(tmp_path / "jobs.db", monkeypatch)
    jobs.record_ignored(db, received(0))
    assert synced == [((tmp_path / "jobs.db-wal").stat().st_size, True)]
    jobs.record_assoc_end(db, "assoc-1")
    assert len(synced) == 1
    GroupCommit(db).record(received(1))
    assert len(synced) == 2 and synced[-1][0] == (tmp_path / "jobs.db-wal").stat().st_size
    assert [k for (k,) in db.execute("SELECT kind FROM jobs ORDER BY seq")] == ["ignored", "assoc_end", "store"]


def test_a_workers_transaction_waits_for_another_writer(tmp_path: Path) -> None:
    """busy_timeout 0 for good: BEGIN IMMEDIATE is retried (when_free), not refused."""
    import threading

    db = jobs.JobDB(tmp_path / "jobs.db", direct_writes=False)
    other = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    jobs.insert(other, dict(received(0), kind="store", state="queued"))
    threading.Timer(0.2, other.execute, ("COMMIT",)).start()
    with db.transaction() as c:
        jobs.insert(c, dict(received(1), kind="store", state="queued"))
    assert db.execute("SELECT spool FROM jobs ORDER BY seq") == [("0.dcm",), ("1.dcm",)]  # after the other's commit
    other.close()
