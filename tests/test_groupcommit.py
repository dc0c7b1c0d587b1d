"""Group commit of job rows (receiver.groupcommit) on a real SQLite job table.

Threads stand in for concurrent associations. Whether rows happen to share a commit
depends on timing, so the sharing is shown by holding the commit lock while the rows
queue up: what was waiting when the lock came free goes into one commit.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from receiver.groupcommit import GroupCommit
from spoolscp import jobs


def received(i: int) -> dict:
    return {"spool": f"{i}.dcm", "received_at": time.time(), "sop_instance": f"1.2.{i}", "options": {}}


def committer(tmp_path: Path) -> GroupCommit:
    return GroupCommit(jobs.JobDB(tmp_path / "jobs.db"))


def record_in_threads(gc: GroupCommit, count: int, results: dict, hold: bool) -> list[threading.Thread]:
    def one(i: int) -> None:
        try:
            results[i] = gc.record(received(i))
        except Exception as exc:  # noqa: BLE001 - the test looks at what each waiter got
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    if hold:
        deadline = time.monotonic() + 10
        while len(gc._waiting) < count and time.monotonic() < deadline:
            time.sleep(0.01)
    return threads


def test_rows_waiting_together_share_one_commit_and_each_gets_its_own_seq(tmp_path: Path, monkeypatch) -> None:
    gc = committer(tmp_path)
    batches: list[int] = []
    original = gc._commit
    monkeypatch.setattr(gc, "_commit", lambda batch: (batches.append(len(batch)), original(batch)))
    results: dict = {}
    with gc._commit_lock:
        threads = record_in_threads(gc, 5, results, hold=True)
    for t in threads:
        t.join(10)
    assert batches == [5]
    assert sorted(results.values()) == list(range(1, 6))
    rows = gc.db.execute("SELECT seq, spool, kind, state FROM jobs ORDER BY seq")
    assert [(seq, kind, state) for seq, _, kind, state in rows] == [(s, "store", "queued") for s in range(1, 6)]
    assert {spool for _, spool, _, _ in rows} == {f"{i}.dcm" for i in range(5)}


def test_many_concurrent_records_are_all_durable_and_distinct(tmp_path: Path) -> None:
    gc = committer(tmp_path)
    results: dict = {}
    for t in record_in_threads(gc, 40, results, hold=False):
        t.join(30)
    assert sorted(results.values()) == list(range(1, 41))
    assert gc.db.execute("SELECT count(*) FROM jobs")[0][0] == 40


def test_a_failed_commit_fails_every_row_of_its_batch_and_records_none(tmp_path: Path, monkeypatch) -> None:
    gc = committer(tmp_path)
    real = jobs.insert
    inserted: list[int] = []

    def insert_fails_on_the_second_row(conn, row):  # say, the disk fails: nothing may be acknowledged
        inserted.append(1)
        if len(inserted) == 2:
            raise OSError(5, "I/O error")
        return real(conn, row)

    monkeypatch.setattr(jobs, "insert", insert_fails_on_the_second_row)
    results: dict = {}
    with gc._commit_lock:
        threads = record_in_threads(gc, 3, results, hold=True)
    for t in threads:
        t.join(10)
    assert all(isinstance(r, OSError) for r in results.values()) and len(results) == 3
    assert gc.db.execute("SELECT count(*) FROM jobs")[0][0] == 0
    monkeypatch.setattr(jobs, "insert", real)
    assert gc.record(received(9)) == 1  # the rolled-back rows left nothing behind

