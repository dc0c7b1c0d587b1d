"""The Huey application (workers.app): each message sent and taken in one statement, once,
in order, waiting out another writer; no revocation bookkeeping around a task."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from spoolscp.settings import load_settings
from workers.app import make_huey, open_queue


def test_concurrent_consumers_take_every_message_once_in_order(tmp_path: Path) -> None:
    settings = load_settings(state_dir=str(tmp_path))
    queue = open_queue(settings)
    for seq in range(300):
        queue.enqueue(seq)
    takers = [open_queue(settings).huey for _ in range(3)]  # one connection each, as worker processes have
    taken: list[list[int]] = [[] for _ in takers]

    def drain(huey, into: list[int]) -> None:
        while (data := huey.storage.dequeue()) is not None:
            into.append(huey.deserialize_task(data).args[0])

    threads = [threading.Thread(target=drain, args=(h, t)) for h, t in zip(takers, taken)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for mine in taken for s in mine) == list(range(300))
    assert all(mine == sorted(mine) for mine in taken)  # FIFO for each taker
    assert queue.huey.storage.dequeue() is None and queue.huey.pending_count() == 0


def test_an_enqueue_is_one_statement_that_waits_out_another_writer(tmp_path: Path) -> None:
    """A worker's write lock makes the receiver's enqueue wait (in short sleeps, not
    SQLite's millisecond ones) and then succeed, after the other's message."""
    settings = load_settings(state_dir=str(tmp_path))
    queue = open_queue(settings)
    seen: list[str] = []
    queue.huey.storage.conn.set_trace_callback(seen.append)
    queue.enqueue(1)
    assert [s.split()[0].lower() for s in seen if not s.upper().startswith("PRAGMA")] == ["insert"]
    other = sqlite3.connect(settings.queue_db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO task (queue, data, priority) SELECT queue, data, priority FROM task")
    threading.Timer(0.2, other.execute, ("COMMIT",)).start()
    started = time.monotonic()
    queue.enqueue(2)
    assert time.monotonic() - started >= 0.15  # it waited for the other's commit
    other.close()
    assert [task.args[0] for task in queue.huey.pending()] == [1, 1, 2]


def test_an_idle_queue_is_polled_without_the_write_lock(tmp_path: Path) -> None:
    huey = make_huey(load_settings(state_dir=str(tmp_path)))
    seen: list[str] = []
    huey.storage.conn.set_trace_callback(seen.append)
    assert huey.storage.dequeue() is None
    assert huey.storage.dequeue() is None
    assert seen and all(s.lower().startswith("select") for s in seen)


def test_no_revocation_is_checked_or_possible(tmp_path: Path) -> None:
    queue = open_queue(load_settings(state_dir=str(tmp_path)))
    with pytest.raises(NotImplementedError):
        queue.huey.revoke_by_id("any")
    with pytest.raises(NotImplementedError):
        queue.tasks.run_job.revoke()
    queue.enqueue(1)  # no such job row: the run claims nothing
    seen: list[str] = []
    queue.huey.storage.conn.set_trace_callback(seen.append)
    queue.huey.execute(queue.huey.dequeue())
    assert seen and not [s for s in seen if " kv " in s.lower()]  # the message was taken, no key read or deleted
