"""The job table: one row per received object, the source of truth for the pipeline.

Huey's queue only wakes workers up; it deletes a task before running it, so a worker
killed mid-task loses the Huey message. This table does not: a row leaves ``queued`` /
``running`` only when its work is finished, and the reconciler re-queues rows whose
worker died. Tasks are idempotent, so running one twice is harmless.

Life cycle of a row::

    queued -> running -> done
                  \\-> scheduled (retry with backoff) -> running ...
                  \\-> failed (last attempt; kept with its error)

>>> conn = open_jobs(Path("/tmp/demo-jobs.db"))            # doctest: +SKIP
>>> seq = record_received(conn, received)                  # doctest: +SKIP
>>> job = claim(conn, seq)                                 # doctest: +SKIP
>>> mark_done(conn, seq)                                   # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import sqlite_utils
from sqlite_utils.migrations import Migrations

from spoolscp import spool
from spoolscp.walsync import WalSync

T = TypeVar("T")
STATES = ("queued", "waiting", "running", "scheduled", "done", "failed")
KINDS = ("store", "assoc_end", "ignored", "eos", "exec")
HOST = socket.gethostname()

migrations = Migrations("spoolscp.jobs")


@migrations()
def m001_jobs(db: sqlite_utils.Database) -> None:
    """The job table, the study tracker's state and the associations it has seen.

    ``kind`` says what a row is: ``store`` (a received object), ``assoc_end`` (an
    association that stored objects has ended: a marker in reception order), ``eos``
    (an end of study: rename its files) or ``exec`` (one -xcr/-xcs command line).
    ``ignored`` marks an object received under ``--ignore``, only so that its ``-xcr``
    takes its place in reception order.
    """
    # AUTOINCREMENT: a sequence number is never reused, even after purges.
    db.execute(
        "CREATE TABLE IF NOT EXISTS jobs ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL DEFAULT 'store',"
        " state TEXT NOT NULL, spool TEXT, received_at REAL NOT NULL, assoc TEXT,"
        " calling_ae TEXT, called_ae TEXT, peer_host TEXT, peer_ip TEXT,"
        " sop_class TEXT, sop_instance TEXT, transfer_syntax TEXT, status INTEGER,"
        " study_uid TEXT, patient_name BLOB, charset TEXT, options TEXT NOT NULL DEFAULT '{}',"
        " tracked INTEGER NOT NULL DEFAULT 0, study_id INTEGER, out_subdir TEXT, out_name TEXT,"
        " command TEXT, plan TEXT, after_seq INTEGER, sync INTEGER NOT NULL DEFAULT 0,"
        " attempts INTEGER NOT NULL DEFAULT 0, error TEXT, pid INTEGER, host TEXT,"
        " lease_until REAL, child_pid INTEGER, updated_at REAL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, kind)")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_untracked ON jobs (tracked, seq)")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_study ON jobs (study_id, kind)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS studies (id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL,"
        " dir TEXT NOT NULL, state TEXT NOT NULL, opened_seq INTEGER, last_seq INTEGER,"
        " last_at REAL, last_assoc TEXT, closed_by TEXT)"
    )
    db.execute("CREATE TABLE IF NOT EXISTS assocs (id TEXT PRIMARY KEY, ended INTEGER NOT NULL DEFAULT 0)")
    db.execute("CREATE TABLE IF NOT EXISTS tracker (id INTEGER PRIMARY KEY CHECK (id = 1), tn_last TEXT, tn_counter INTEGER)")
    db.execute("INSERT OR IGNORE INTO tracker (id, tn_last, tn_counter) VALUES (1, '', -1)")


@migrations()
def m002_assoc_succession(db: sqlite_utils.Database) -> None:
    """When each association began and ended, in reception order (``assocs.ended`` and
    ``first_seq`` hold sequence numbers): the tracker ends a study on another sender's
    object only if that sender began after the study's sender had ended (spec §7)."""
    db.execute("ALTER TABLE assocs ADD COLUMN first_seq INTEGER")
    db.execute("CREATE INDEX IF NOT EXISTS studies_dir ON studies (dir)")  # a new study's free name


@migrations()
def m003_outputs(db: sqlite_utils.Database) -> None:
    """Which object each output path holds: the latest received wins, as in storescp.

    Workers write in parallel, so two receptions of the same instance (a corrected
    re-send) can finish out of order; ``publish`` consults this table so that an earlier
    object never replaces a later one.
    """
    db.execute("CREATE TABLE IF NOT EXISTS outputs (path TEXT PRIMARY KEY, seq INTEGER NOT NULL)")


@migrations()
def m004_spool_data(db: sqlite_utils.Database) -> None:
    """Small objects' spool files, held in the job table instead of the spool folder.

    One row per ``store`` job whose ``spool`` name is here (``spoolscp.spool``): inserted
    in the transaction that records the job, deleted in the one that marks it done.
    """
    db.execute("CREATE TABLE IF NOT EXISTS spool_data (name TEXT PRIMARY KEY, data BLOB NOT NULL)")


@migrations()
def m005_partial_study_index(db: sqlite_utils.Database) -> None:
    """``jobs_study`` holds only rows placed in a study (every query on it asks for one):
    the receiver's insert, whose ``study_id`` is still NULL, writes one page less."""
    db.execute("DROP INDEX IF EXISTS jobs_study")
    db.execute("CREATE INDEX jobs_study ON jobs (study_id, kind) WHERE study_id IS NOT NULL")


@migrations()
def m006_spool_data_by_seq(db: sqlite_utils.Database) -> None:
    """``spool_data`` keyed by its job's ``seq``, the table's own rowid, instead of by spool
    name: no separate index on the name, so a received object's commit and a done
    object's each write one page less."""
    db.execute("CREATE TABLE spool_data_by_seq (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    db.execute("INSERT INTO spool_data_by_seq (seq, data) SELECT jobs.seq, spool_data.data"
               " FROM spool_data JOIN jobs ON jobs.spool = spool_data.name AND jobs.kind = 'store'")
    db.execute("DROP TABLE spool_data")
    db.execute("ALTER TABLE spool_data_by_seq RENAME TO spool_data")


@dataclass(frozen=True)
class Job:
    """One row of the job table, with its options decoded."""

    seq: int
    kind: str
    state: str
    spool: str | None
    received_at: float
    assoc: str | None
    calling_ae: str | None
    called_ae: str | None
    peer_host: str | None
    peer_ip: str | None
    sop_class: str | None
    sop_instance: str | None
    transfer_syntax: str | None
    status: int | None
    study_uid: str | None
    patient_name: bytes | None
    charset: str | None
    options: dict[str, Any]
    tracked: int
    study_id: int | None
    out_subdir: str | None
    out_name: str | None
    command: str | None
    plan: str | None
    after_seq: int | None
    sync: int
    attempts: int
    error: str | None
    child_pid: int | None


JOB_COLUMNS = ", ".join(Job.__dataclass_fields__)


class JobDB:
    """A connection to the job table that several threads may share.

    SQLite serialises writers across processes; the lock serialises this process's
    threads on its one connection (the receiver runs one thread per association).
    Statements run alone commit with ``synchronous=FULL``; transactions commit with
    ``synchronous=NORMAL`` and sync the WAL after releasing both locks
    (``spoolscp.walsync``), which is as durable and lets concurrent writers overlap
    their fsyncs.
    """

    def __init__(self, path: Path, direct_writes: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None)
        # FULL: a commit is on disk before we acknowledge the object it records.
        self.conn.execute("PRAGMA synchronous=FULL")
        self.lock = threading.Lock()
        with _schema_lock(path):
            # Before the first table (a no-op afterwards): lets reclaim_space shrink the file.
            self.conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            migrations.apply(sqlite_utils.Database(self.conn))
        # Without WAL (a file system that refuses it) transactions stay synchronous=FULL.
        self.wal = WalSync(path) if mode.lower() == "wal" else None
        # ``direct_writes=False``: this process never writes through ``conn`` itself, only
        # through execute/write/transaction, which sync the WAL themselves. The connection
        # then stays at NORMAL and busy_timeout 0 (when_free waits) for good: no four
        # PRAGMA toggles around every transaction (the workers' half dozen per job).
        self.steady = not direct_writes and self.wal is not None
        if self.steady:
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout = 0")

    def close(self) -> None:
        self.conn.close()

    def execute(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run one statement in its own transaction and return its rows."""
        with self.lock:
            changes = self.conn.total_changes
            found = self.when_free(lambda: self.conn.execute(sql, params).fetchall())
            wrote = self.steady and self.conn.total_changes != changes
        if wrote:
            self.wal.sync()  # type: ignore[union-attr]  # steady: a write is made durable here
        return found

    def when_free(self, call: Callable[[], T]) -> T:
        """:func:`when_free` on this connection (already at busy_timeout 0 when steady)."""
        return _retry_while_locked(call) if self.steady else when_free(self.conn, call)

    def write(self, sql: str, params: tuple | dict = ()) -> None:
        """Run one changing statement durably, as a :meth:`transaction` commits it.

        Unlike :meth:`execute` (SQLite's own fsync, inside its write lock), the WAL is
        synced after the lock is released: a worker marking a job done does not hold up
        the receiver's commit for the length of a disk flush.

        >>> db.write("UPDATE jobs SET state = 'done' WHERE seq = ?", (17,))  # doctest: +SKIP
        """
        with self.transaction() as c:
            c.execute(sql, params)

    def transaction(self, fsync: bool = True) -> "_Immediate":
        """``with db.transaction() as c:`` runs a read-modify-write under BEGIN IMMEDIATE.

        The block's end returns once the commit is durable; the WAL is synced outside
        the locks (``spoolscp.walsync``), and a failure of that sync raises
        ``UnsyncedCommit`` (committed, durability unknown).

        ``fsync=False`` commits without waiting for the disk (``synchronous=NORMAL``):
        safe against a killed process, lost only to a power cut, and then found again
        by the next fsynced commit or redone. For steps that are cheaper to redo than
        to fsync, such as a worker's claim.
        """
        return _Immediate(self, fsync)


@contextmanager
def _schema_lock(path: Path) -> Iterator[None]:
    """Serialise set-up across processes: a receiver and workers starting together would
    otherwise race on switching to WAL ("database is locked") and on applying the same
    migration twice (IntegrityError)."""
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


BUSY_TIMEOUT = 30.0  # seconds a write waits for another process's transaction
_BUSY_SLEEP_MAX = 0.002


def when_free(conn: sqlite3.Connection, call: Callable[[], T]) -> T:
    """``call()`` (one statement, or ``BEGIN IMMEDIATE``), retried while another process
    writes, with short sleeps.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries: a receiver
    answering a C-STORE waited milliseconds for a worker's commit that had ended
    long before. Here the wait starts at 0.1 ms and never exceeds 2 ms; a statement
    that found the database locked did nothing, so trying it again is safe.
    """
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        return _retry_while_locked(call)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")


def _retry_while_locked(call: Callable[[], T]) -> T:
    """``call()`` on a connection at busy_timeout 0, retried with short sleeps."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    delay = 0.0001
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, _BUSY_SLEEP_MAX)


class _Immediate:
    def __init__(self, db: JobDB, fsync: bool = True) -> None:
        self.db = db
        self.wal_sync = db.wal if fsync else None
        # commit without SQLite's own fsync; a steady connection is at NORMAL already
        self.normal = (not fsync or db.wal is not None) and not db.steady

    def __enter__(self) -> sqlite3.Connection:
        self.db.lock.acquire()
        try:
            if self.normal:
                self.db.conn.execute("PRAGMA synchronous=NORMAL")
            self.db.when_free(lambda: self.db.conn.execute("BEGIN IMMEDIATE"))
        except BaseException:
            if self.normal:
                self.db.conn.execute("PRAGMA synchronous=FULL")
            self.db.lock.release()
            raise
        self.changes = self.db.conn.total_changes
        return self.db.conn

    def make_durable(self) -> None:
        """Sync this transaction's WAL after all, as ``fsync=True`` would have. (Without
        WAL, SQLite cannot change its safety level inside a transaction: one that may
        need this is then begun with ``fsync=True``.)"""
        self.wal_sync = self.db.wal

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            self.db.conn.execute("ROLLBACK" if exc_type else "COMMIT")
            # A block that changed nothing has nothing to make durable: no flush for it
            # (a worker's dispatch or tracking pass that found no work, on every job).
            wrote = self.db.conn.total_changes != self.changes
        finally:
            if self.normal:
                self.db.conn.execute("PRAGMA synchronous=FULL")
            self.db.lock.release()
        if self.wal_sync is not None and exc_type is None and wrote:
            self.wal_sync.sync()  # outside the locks: other writers commit meanwhile


def insert(c: sqlite3.Connection, row: dict[str, Any]) -> int:
    """Insert one row (``options`` as a dict) and return its sequence number."""
    row = dict(row, updated_at=time.time())
    if "options" in row:
        row["options"] = json.dumps(row["options"])
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    return int(c.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", tuple(row.values())).lastrowid)


def insert_spool_data(c: sqlite3.Connection, seq: int, data: bytes | bytearray) -> None:
    """Hold the spool file of job ``seq`` (a small object) in the table, inside the
    transaction that inserted the job."""
    c.execute("INSERT INTO spool_data (seq, data) VALUES (?, ?)", (seq, data))


def spool_data(db: JobDB, seq: int) -> bytes | None:
    """The spool file bytes of job ``seq`` if the table holds them (None: it is in the spool folder)."""
    found = db.execute("SELECT data FROM spool_data WHERE seq = ?", (seq,))
    return found[0][0] if found else None


def record_received(db: JobDB, fields: dict[str, Any]) -> int:
    """Insert a received object as ``queued`` and return its sequence number.

    The commit is synchronous (fsynced) before this returns.
    """
    with db.lock:
        return insert(db.conn, dict(fields, kind="store", state="queued"))


def record_assoc_end(db: JobDB, assoc: str) -> int:
    """Mark, in reception order, that an association which stored objects has ended.

    Not fsynced (a FULL commit is about 200 us of the peer's wait for its A-RELEASE-RP):
    a killed process cannot lose it (the commit is in the WAL before this returns),
    and the next fsynced commit, the next object's, makes it durable together with
    everything before it, in order. A power cut can therefore lose it only while no
    later object has been acknowledged. The row holds no object and no output, so
    nothing is lost or stored twice; what changes is that the association's study does
    not end at the first object of another study after the restart but by ``-tos``,
    as already happens when the receiver is killed before an association's release.
    """
    with db.transaction(fsync=False) as c:
        return insert(c, {"kind": "assoc_end", "state": "done", "assoc": assoc, "received_at": time.time()})


def record_ignored(db: JobDB, fields: dict[str, Any]) -> int:
    """Record, in reception order, an object received under ``--ignore`` (nothing to write)."""
    with db.transaction() as c:
        return insert(c, dict(fields, kind="ignored", state="done"))


def job_from_row(row: tuple | list, **changes: Any) -> Job:
    """The Job of a row of ``JOB_COLUMNS``, with ``changes`` to some of its columns."""
    values = dict(zip(Job.__dataclass_fields__, row), **changes)
    values["options"] = json.loads(values["options"])
    return Job(**values)


def get_job(db: JobDB, seq: int) -> Job | None:
    rows = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE seq = ?", (seq,))
    return job_from_row(rows[0]) if rows else None


def pid_alive(pid: int | None) -> bool:
    """Does ``pid`` still run? A zombie does not: a SIGKILLed worker stays one until reaped."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] != [b"Z"]
    except FileNotFoundError:
        return False  # gone in between
    except OSError:
        return True  # no /proc: trust kill(0)


def _abandoned(state: str, pid: int | None, host: str | None, lease_until: float | None, now: float) -> bool:
    """A ``running`` row whose worker is gone (dead pid here, or lease expired elsewhere)."""
    if state != "running":
        return False
    if host == HOST:
        return not pid_alive(pid)
    return (lease_until or 0) < now


_CLAIM_SELECT = f"SELECT {JOB_COLUMNS}, pid, host, lease_until FROM jobs WHERE seq = ?"
_COLUMN = {name: i for i, name in enumerate(Job.__dataclass_fields__)}


def claim(db: JobDB, seq: int, lease_seconds: float = 600.0,
          place: Callable[[sqlite3.Connection], int] | None = None) -> Job | None:
    """Mark ``seq`` running for this process, or return None if it is not ours to run.

    A row is claimable when queued or scheduled, or running but abandoned. A row that
    is done, failed, or running in a live worker is left alone: that is what makes a
    duplicated Huey message harmless.

    ``place`` (the study tracker's step, ``workers.tracker.place``) runs first, in the
    same transaction, when the row has not been placed yet, whatever its state (an end
    of association is a done row that still ends studies); it returns how many rows it
    placed. Its decisions (folders, names, commands) are then synced with the claim,
    before any output uses them. A row already placed costs no tracking pass at all:
    rows are placed in sequence order, so every earlier row is placed too.

    The claim of an ``eos`` or ``exec`` row is synced as well: it makes every earlier
    done mark durable (:func:`mark_done` leaves some unsynced) before a study is renamed
    or a command runs on what those jobs wrote.
    """
    now = time.time()
    tx = db.transaction(fsync=db.wal is None)  # a claim lost to a power cut: the job runs again
    with tx as c:
        row = c.execute(_CLAIM_SELECT, (seq,)).fetchone()
        if row is not None and not row[_COLUMN["tracked"]] and place is not None and place(c):
            tx.make_durable()
            row = c.execute(_CLAIM_SELECT, (seq,)).fetchone()
        if row is None:
            return None
        *fields, pid, host, lease = row
        state = fields[_COLUMN["state"]]
        if state not in ("queued", "scheduled") and not _abandoned(state, pid, host, lease, now):
            return None
        c.execute(
            "UPDATE jobs SET state='running', pid=?, host=?, lease_until=?, attempts=attempts+1,"
            " updated_at=? WHERE seq=?",
            (os.getpid(), HOST, now + lease_seconds, now, seq),
        )
        if fields[_COLUMN["kind"]] != "store":  # acts on outputs: every earlier done mark durable first
            tx.make_durable()
    return job_from_row(fields, state="running", attempts=fields[_COLUMN["attempts"]] + 1)


def mark_done(db: JobDB, seq: int, note: str | None = None) -> bool:
    """Finished: ``note`` says why a step had nothing to do (kept in ``error``). The job's
    spool data held in the table, if any, goes in the same commit: never before its job
    is done, never left behind once it is. Returns whether the table held it (if not, a
    store job's spool is a file for the caller to remove).

    The commit is synced unless the table held the spool data: a spool file is removed
    next, and its job must be durably done first. A held object's done mark rides on
    the next synced commit instead (anyone's: the WAL is synced as a whole); a power cut
    before it loses the mark and the deleted data together, and the job is redone from
    that data, to the same output. Every step that could act on such an output (an
    ``eos`` rename, an ``exec`` command) syncs when it is claimed (:func:`claim`), so a
    redo never meets a study already moved or a command already run.
    """
    tx = db.transaction(fsync=db.wal is None)
    with tx as c:
        c.execute(
            "UPDATE jobs SET state='done', error=?, pid=NULL, lease_until=NULL, child_pid=NULL, updated_at=?"
            " WHERE seq=?",
            (note, time.time(), seq),
        )
        held = c.execute("DELETE FROM spool_data WHERE seq = ?", (seq,)).rowcount > 0
        if not held:
            tx.make_durable()
    return held


def mark_error(db: JobDB, seq: int, error: str, final: bool) -> None:
    """Record a failed attempt: ``scheduled`` for a retry, or ``failed`` after the last one."""
    db.write(
        "UPDATE jobs SET state=?, error=?, pid=NULL, lease_until=NULL, child_pid=NULL, updated_at=? WHERE seq=?",
        ("failed" if final else "scheduled", error, time.time(), seq),
    )


def release(db: JobDB, seq: int) -> None:
    """Give a running job back to the queue (graceful shutdown interrupted it)."""
    db.write("UPDATE jobs SET state='queued', pid=NULL, lease_until=NULL WHERE seq=? AND state='running'", (seq,))


def stats(db: JobDB) -> dict[str, int]:
    """Counts for ``queue stats``: ``received`` (all rows), then one per state.

    ``received`` counts objects; the other counts cover every job (objects, ends of study,
    commands). ``queued`` and ``waiting`` (an exec waiting for its turn) are reported as
    ``pending``, the word operators know from Huey.
    """
    counts = dict.fromkeys(STATES, 0)
    for state, n in db.execute("SELECT state, count(*) FROM jobs WHERE kind != 'assoc_end' GROUP BY state"):
        counts[state] = n
    received = db.execute("SELECT count(*) FROM jobs WHERE kind = 'store'")[0][0]
    pending = counts.pop("queued") + counts.pop("waiting")
    return {"received": received, "pending": pending} | counts


def recoverable(db: JobDB, stale_after: float = 0.0) -> list[int]:
    """Rows that need a (new) Huey message: queued ones and abandoned running ones.

    ``stale_after`` skips queued rows younger than that many seconds, whose Huey
    message is most likely still on its way, unless the receiver that recorded the row
    (the pid in its spool name) is gone: no message is coming from it, and a SIGKILLed
    receiver's last objects need not wait out the grace.
    """
    now = time.time()
    rows = db.execute(
        "SELECT seq, state, pid, host, lease_until, updated_at, spool FROM jobs"
        " WHERE state IN ('queued', 'running') ORDER BY seq"
    )
    alive = functools.cache(pid_alive)  # one look per receiver pid
    found = []
    for seq, state, pid, host, lease, updated, name in rows:
        young = state == "queued" and now - (updated or 0) < stale_after
        writer = spool.writer_pid(name) if young and name else None
        if young and (writer is None or alive(writer)):
            continue  # its receiver (or whoever queued it) may still send the message
        if state == "queued" or _abandoned(state, pid, host, lease, now):
            found.append(seq)
    return found


# ---------------------------------------------------------------------------------------
# Queries for operators (``spoolscp queue``) and the reconciler


def row(db: JobDB, seq: int) -> dict[str, Any] | None:
    """Every column of one row (pid, host, lease, timestamps too), options decoded."""
    found = _dict_rows(db, "SELECT * FROM jobs WHERE seq = ?", (seq,))
    return found[0] if found else None


def rows(db: JobDB, states: tuple[str, ...] = (), study: str | None = None, limit: int = 0) -> list[dict[str, Any]]:
    """Rows in sequence order, filtered by state and by study UID; ``limit`` 0 = all.

    Markers of ended associations (``assoc_end``) are bookkeeping, not jobs: left out.
    A study matches a stored object by its UID and an end of study or a command by
    the study the tracker placed it in.
    """
    where, params = ["kind != 'assoc_end'"], []
    if states:
        where.append(f"state IN ({', '.join('?' for _ in states)})")
        params += states
    if study is not None:
        where.append("(study_uid = ? OR study_id IN (SELECT id FROM studies WHERE uid = ?))")
        params += (study, study)
    sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY seq"
    if limit > 0:
        sql += f" LIMIT {int(limit)}"
    return _dict_rows(db, sql, tuple(params))


def _dict_rows(db: JobDB, sql: str, params: tuple) -> list[dict[str, Any]]:
    with db.lock:
        cursor = db.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        found = [dict(zip(names, r)) for r in cursor.fetchall()]
    for values in found:
        values["options"] = json.loads(values["options"])
    return found


def requeue_failed(db: JobDB, seqs: list[int] | None = None) -> list[int]:
    """Put failed rows (``seqs``, or all of them) back to ``queued``; return those moved.

    The attempt count is kept (it tells how often the job ran); the last error is kept
    until the job runs again. The caller sends the Huey messages.
    """
    with db.transaction() as c:
        if seqs is None:
            found = [s for (s,) in c.execute("SELECT seq FROM jobs WHERE state = 'failed' ORDER BY seq")]
        else:
            marks = ", ".join("?" for _ in seqs)
            found = [s for (s,) in c.execute(f"SELECT seq FROM jobs WHERE state = 'failed' AND seq IN ({marks})", seqs)]
        c.executemany("UPDATE jobs SET state = 'queued', updated_at = ? WHERE seq = ?", [(time.time(), s) for s in found])
    return found


def publish(db: JobDB, seq: int, path: Path, move: Callable[[], None]) -> bool:
    """Run ``move`` (the rename that puts object ``seq`` at ``path``) unless a later object
    already holds ``path``; return whether it ran.

    The check, the rename and the record are one transaction, so two workers writing the
    same name settle in reception order whatever order they finish in, and a re-run after
    a crash between rename and commit simply renames again. The commit is not synced: it
    becomes durable with the job's done mark (:func:`mark_done`), or with any later
    synced commit; a power cut before that runs the job, and this, again.

    >>> publish(db, 17, Path("out/CT.1.2.3"), lambda: os.replace(tmp, final))  # doctest: +SKIP
    True
    """
    with db.transaction(fsync=False) as c:  # durable with the job's done mark, which follows
        # recorded first (one statement: claim the path unless a later object holds it);
        # a failed move raises, and the transaction rolls the record back
        if not c.execute("INSERT INTO outputs (path, seq) VALUES (?, ?) ON CONFLICT (path)"
                         " DO UPDATE SET seq = excluded.seq WHERE outputs.seq <= excluded.seq",
                         (str(path), seq)).rowcount:
            return False
        move()
    return True


def purge_done(db: JobDB, older_than: float) -> list[int]:
    """Delete ``done`` rows last updated more than ``older_than`` seconds ago; return the jobs
    among them (markers of ended associations go too, uncounted).

    Kept anyway: objects the tracker has not placed yet and association markers it has
    not read (both decide how later studies end), rows an unfinished command still
    waits on (``after_seq``), and the objects of a study that is still open or not yet
    renamed (its end of study reads them: ``-tos``, the ``-rns`` plan).
    """
    cutoff = time.time() - older_than
    with db.transaction() as c:
        found = [
            (s, kind)
            for s, kind in c.execute(
                "SELECT seq, kind FROM jobs WHERE state = 'done' AND updated_at < ?"
                " AND (tracked = 1 OR kind IN ('eos', 'exec'))"
                " AND seq NOT IN (SELECT after_seq FROM jobs WHERE after_seq IS NOT NULL"
                " AND state NOT IN ('done', 'failed'))"
                " AND (study_id IS NULL OR (study_id NOT IN (SELECT id FROM studies WHERE state = 'open')"
                " AND study_id NOT IN (SELECT study_id FROM jobs WHERE kind = 'eos' AND state NOT IN ('done', 'failed'))))",
                (cutoff,),
            )
        ]
        c.executemany("DELETE FROM jobs WHERE seq = ?", [(s,) for s, _ in found])
        # an output record matters only while an earlier object could still be written
        c.execute("DELETE FROM outputs WHERE seq NOT IN (SELECT seq FROM jobs) AND seq <"
                  " (SELECT coalesce(min(seq), 1 << 62) FROM jobs WHERE kind = 'store' AND state != 'done')")
    return [s for s, kind in found if kind != "assoc_end"]


RECLAIM_ABOVE = 2560  # free pages (10 MB) jobs.db may keep for the next objects
RECLAIM_STEP = 2560  # pages given back per transaction


def reclaim_space(db: JobDB, above: int = RECLAIM_ABOVE, step: int = RECLAIM_STEP) -> int:
    """Give the space of finished small objects back to the file system; return the pages.

    Their bytes stay in ``spool_data`` until their job is done, so a backlog (workers
    stopped, a burst) grows jobs.db, and SQLite reuses freed pages but never shrinks the
    file. The reconciler calls this: ``incremental_vacuum`` frees ``step`` pages at a
    time, each step its own short transaction, so a receiver's commit waits one step at
    most. A jobs.db created before spool_data (no ``auto_vacuum``) is left as it is.

    >>> reclaim_space(db)                               # doctest: +SKIP
    7350
    """
    if db.execute("PRAGMA auto_vacuum")[0][0] != 2:  # 2 = INCREMENTAL
        return 0
    freed, free = 0, db.execute("PRAGMA freelist_count")[0][0]
    while free > above:
        with db.lock:  # executescript: a pragma run to completion, in its own transaction
            db.when_free(lambda: db.conn.executescript(f"PRAGMA incremental_vacuum({int(step)})"))
        left = db.execute("PRAGMA freelist_count")[0][0]
        if left >= free:
            break
        freed, free = freed + free - left, left
    return freed


def spool_states(db: JobDB) -> dict[str, str]:
    """Spool file name -> state of the object it belongs to (for the spool sweep)."""
    return dict(db.execute("SELECT spool, state FROM jobs WHERE kind = 'store' AND spool IS NOT NULL"))


def overdue_scheduled(db: JobDB, older_than: float) -> list[int]:
    """``scheduled`` rows whose retry is ``older_than`` seconds late.

    Huey's scheduler deletes due retries before enqueueing them, so a consumer killed in
    between loses them; the row stays ``scheduled``. ``older_than`` should exceed the
    longest retry delay so that a retry still on its way is not doubled (a doubled one
    would be harmless anyway: the claim lets only one run).
    """
    cutoff = time.time() - older_than
    return [s for (s,) in db.execute("SELECT seq FROM jobs WHERE state = 'scheduled' AND updated_at < ? ORDER BY seq", (cutoff,))]
