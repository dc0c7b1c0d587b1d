"""The job table's life cycle: claims make duplicated messages harmless; the space of
finished small objects goes back to the file system."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from spoolscp import jobs


@pytest.fixture
def db(tmp_path):
    d = jobs.JobDB(tmp_path / "jobs.db")
    yield d
    d.close()


def received(n: int = 0) -> dict:
    return {
        "spool": f"s{n}.dcm", "received_at": 1.0, "calling_ae": "SCU", "called_ae": "SCP",
        "peer_host": "localhost", "peer_ip": "127.0.0.1", "sop_class": "1.2", "sop_instance": f"1.2.{n}",
        "transfer_syntax": "1.2.840.10008.1.2.1", "status": 0, "out_name": f"CT.1.2.{n}", "options": {"k": n},
    }


def test_sequence_numbers_follow_reception_order(db):
    seqs = [jobs.record_received(db, received(i)) for i in range(3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert jobs.get_job(db, seqs[1]).options == {"k": 1}


def test_a_claimed_job_cannot_be_claimed_again_while_its_worker_lives(db):
    seq = jobs.record_received(db, received())
    assert jobs.claim(db, seq).state == "running"
    assert jobs.claim(db, seq) is None  # duplicate message: no-op
    jobs.mark_done(db, seq)
    assert jobs.claim(db, seq) is None  # done stays done
    assert jobs.stats(db) == {"received": 1, "pending": 0, "running": 0, "scheduled": 0, "done": 1, "failed": 0}


def test_a_job_whose_worker_died_is_recovered(db, tmp_path):
    seq = jobs.record_received(db, received())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    db.execute("UPDATE jobs SET state='running', pid=?, host=? WHERE seq=?", (pid, jobs.HOST, seq))
    assert jobs.recoverable(db) == [seq]
    job = jobs.claim(db, seq)
    assert job is not None and job.attempts == 1
    assert db.execute("SELECT pid FROM jobs WHERE seq=?", (seq,))[0][0] == os.getpid()


def test_errors_are_scheduled_then_failed(db):
    seq = jobs.record_received(db, received())
    jobs.claim(db, seq)
    jobs.mark_error(db, seq, "OSError: disk full", final=False)
    assert jobs.stats(db)["scheduled"] == 1
    jobs.claim(db, seq)
    jobs.mark_error(db, seq, "OSError: disk full", final=True)
    job = jobs.get_job(db, seq)
    assert (job.state, job.error, job.attempts) == ("failed", "OSError: disk full", 2)
    assert jobs.claim(db, seq) is None


def test_two_processes_share_the_table(tmp_path):
    """Receiver and workers open the same file; migrations run once, rows are seen by both."""
    a, b = jobs.JobDB(tmp_path / "j.db"), jobs.JobDB(tmp_path / "j.db")
    seq = jobs.record_received(a, received())
    assert jobs.get_job(b, seq).sop_instance == "1.2.0"
    a.close(), b.close()


def test_publish_lets_the_latest_reception_hold_a_path(db, tmp_path):
    moves = []
    path = tmp_path / "CT.1.2.3"
    assert jobs.publish(db, 7, path, lambda: moves.append(7))
    assert not jobs.publish(db, 5, path, lambda: moves.append(5))  # earlier: skipped
    assert jobs.publish(db, 7, path, lambda: moves.append(70))  # a re-run of the holder
    assert moves == [7, 70]


def test_a_failing_move_records_nothing(db, tmp_path):
    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError):
        jobs.publish(db, 9, tmp_path / "x", fail)
    assert jobs.publish(db, 3, tmp_path / "x", lambda: None)  # 9 never held it


def test_reclaim_space_shrinks_jobs_db_once_small_objects_are_done(tmp_path: Path) -> None:
    """A backlog of small objects held in the table is given back once they are done."""
    db = jobs.JobDB(tmp_path / "jobs.db")
    seqs = []
    for i in range(300):
        with db.transaction() as c:
            seqs.append(jobs.insert(c, {"kind": "store", "state": "queued", "spool": f"{i}.dcm",
                                        "received_at": 0.0}))
            jobs.insert_spool_data(c, seqs[-1], os.urandom(100_000))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full = (tmp_path / "jobs.db").stat().st_size
    for seq in seqs:
        jobs.mark_done(db, seq)
    assert db.execute("SELECT count(*) FROM spool_data") == [(0,)]
    freed = jobs.reclaim_space(db)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shrunk = (tmp_path / "jobs.db").stat().st_size
    print(f"jobs.db {full} -> {shrunk} bytes, {freed} pages freed")
    assert freed > 0 and db.execute("PRAGMA freelist_count")[0][0] <= jobs.RECLAIM_ABOVE
    assert shrunk < full - 15_000_000  # 30 MB of spool data, at most 10 MB kept free
    assert jobs.reclaim_space(db) == 0  # nothing more to give back


def test_reclaim_space_leaves_a_jobs_db_without_auto_vacuum_alone(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    sqlite3.connect(path).execute("CREATE TABLE early (x)").connection.close()  # made before auto_vacuum
    db = jobs.JobDB(path)
    with db.transaction() as c:
        jobs.insert_spool_data(c, 1, os.urandom(20_000_000))
    db.write("DELETE FROM spool_data")
    assert db.execute("PRAGMA auto_vacuum") == [(0,)]
    assert jobs.reclaim_space(db) == 0


def test_a_claim_places_an_unplaced_row_first_and_syncs_that(db, monkeypatch):
    """The tracker's pass runs in the claim's transaction only while the row is unplaced;
    its decisions are synced with the claim, a plain claim is not (spoolscp.walsync)."""
    from spoolscp import walsync

    seqs = [jobs.record_received(db, received(i)) for i in range(3)]
    placed: list[int] = []

    def place(c) -> int:
        count = c.execute("UPDATE jobs SET tracked = 1, out_name = 'placed' WHERE tracked = 0").rowcount
        placed.append(count)
        return count

    syncs: list[int] = []
    monkeypatch.setattr(walsync.os, "fdatasync", syncs.append)
    first = jobs.claim(db, seqs[0], place=place)
    assert first.out_name == "placed" and placed == [3] and len(syncs) == 1
    second = jobs.claim(db, seqs[1], place=place)
    assert placed == [3] and len(syncs) == 1  # placed already: no pass, no sync
    assert second == jobs.get_job(db, seqs[1]) and (second.state, second.attempts) == ("running", 1)
    end = jobs.record_assoc_end(db, "a1")  # a done marker still gets placed
    assert jobs.claim(db, end, place=place) is None and placed == [3, 1]
    assert jobs.claim(db, seqs[0], place=place) is None and placed == [3, 1]  # running in a live worker


def test_a_claim_that_places_commits_at_full_without_wal(db):
    """A file system without WAL: the claim is SQLite-synced from its BEGIN (the safety
    level cannot change inside a transaction)."""
    db.wal = None
    seq = jobs.record_received(db, received())
    seen: list[str] = []
    db.conn.set_trace_callback(seen.append)
    job = jobs.claim(db, seq, place=lambda c: c.execute("UPDATE jobs SET tracked = 1").rowcount)
    assert job.state == "running" and job.tracked == 1
    assert not [s for s in seen if s.upper().startswith("PRAGMA SYNCHRONOUS")]


def test_an_older_table_gets_the_partial_study_index_and_its_queries_use_it(tmp_path):
    """A job table made before m005 (full ``jobs_study``) is migrated on open: rows not yet
    in a study stay out of the index, and a study's rows are still found through it."""
    import sqlite_utils

    old = sqlite_utils.Database(tmp_path / "jobs.db")
    jobs.migrations.apply(old, stop_before="m005_partial_study_index")
    assert "WHERE" not in old.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs_study'").fetchone()[0]
    old.conn.execute("INSERT INTO jobs (state, received_at, study_id) VALUES ('done', 1.0, 3), ('queued', 2.0, NULL)")
    old.conn.commit()
    old.conn.close()
    db = jobs.JobDB(tmp_path / "jobs.db")
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs_study'")[0]
    assert sql.endswith("WHERE study_id IS NOT NULL")
    plan = db.execute("EXPLAIN QUERY PLAN SELECT seq FROM jobs WHERE kind = 'store' AND study_id = 3")
    assert "INDEX jobs_study (study_id=? AND kind=?)" in plan[0][3]
    assert db.execute("SELECT seq FROM jobs WHERE kind = 'store' AND study_id = 3") == [(1,)]
    db.close()


def test_small_objects_held_under_their_spool_names_are_found_by_job_after_the_migration(tmp_path):
    """A job table from before m006 holds spool bytes by name; opened now, each job finds
    its own bytes by its seq, and marking it done still frees them."""
    import sqlite_utils

    old = sqlite_utils.Database(tmp_path / "jobs.db")
    jobs.migrations.apply(old, stop_before="m006_spool_data_by_seq")
    for n in (1, 2):
        old.conn.execute("INSERT INTO jobs (kind, state, spool, received_at) VALUES ('store', 'queued', ?, 1.0)",
                         (f"s{n}.dcm",))
        old.conn.execute("INSERT INTO spool_data (name, data) VALUES (?, ?)", (f"s{n}.dcm", bytes([n]) * 10))
    old.conn.commit()
    old.conn.close()
    db = jobs.JobDB(tmp_path / "jobs.db")
    assert [jobs.spool_data(db, seq) for seq in (1, 2, 3)] == [b"\x01" * 10, b"\x02" * 10, None]
    assert jobs.mark_done(db, 2) and not jobs.mark_done(db, 2)
    assert db.execute("SELECT seq FROM spool_data") == [(1,)]
    db.close()
