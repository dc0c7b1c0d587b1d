"""The Huey application: one factory that every process calls with the same settings.

The receiver (to enqueue), the consumer (to run) and the queue CLI (to inspect) all
build their queue here, so task names and storage always agree.

>>> queue = open_queue(load_settings(state_dir="/tmp/demo"))   # doctest: +SKIP
>>> queue.enqueue(1)                                          # doctest: +SKIP
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer
from huey.storage import SqliteStorage

from spoolscp import jobs, parentdeath
from spoolscp.settings import Settings
from workers import tasks


@dataclass(frozen=True)
class Queue:
    """The Huey instance plus the tasks registered on it."""

    huey: Huey
    tasks: tasks.Tasks

    def enqueue(self, seq: int) -> None:
        """One durable wake-up for job row ``seq`` (the row, not the message, is the truth)."""
        self.huey.enqueue(self.tasks.run_job.s(seq))


class WakeupStorage(SqliteStorage):
    """Huey's SQLite queue without an fsync per message, one statement per message taken.

    A message only wakes a worker up; the job row (committed with fsync) is the truth,
    and the reconciler re-sends the message of a queued job that has none. WAL with
    ``synchronous=NORMAL`` loses at most the last messages on power loss, never the file.
    """

    def _create_connection(self):  # type: ignore[no-untyped-def]
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def enqueue(self, data: bytes, priority: float | None = None) -> None:
        """One autocommit ``INSERT`` that waits for a worker's write lock in short sleeps.

        Huey's own is three statements (BEGIN EXCLUSIVE, INSERT, COMMIT) behind SQLite's
        busy handler, whose first sleep is a millisecond: the receiver sends wake-ups
        from the association threads, and one that found a worker's dequeue under way
        made its sender wait that long for the next answer (``spoolscp.jobs.when_free``).
        """
        with self.lock:
            conn = self.conn
            jobs.when_free(conn, lambda: conn.execute("insert into task (queue, data, priority) values (?, ?, ?)",
                                                      (self.name, self.to_blob(data), priority or 0)))

    def dequeue(self) -> bytes | None:
        """Take the oldest message in one atomic ``DELETE ... RETURNING``.

        Huey's own dequeue is five statements: a read-only check, BEGIN EXCLUSIVE, SELECT,
        DELETE, COMMIT. The check stays: a worker that has caught up polls an empty queue
        without taking the write lock that the receiver's enqueue needs.
        """
        if not self.sql("select 1 from task where queue = ? limit 1", (self.name,), results=True):
            return None
        rows = self.sql("delete from task where id = (select id from task where queue = ?"
                        " order by priority desc, id limit 1) returning data", (self.name,), results=True)
        return rows[0][0] if rows else None


class _NeverRevoked:
    """Huey without task revocation, which spoolscp never uses.

    Whether a job runs is the job row's business (``spoolscp.jobs.claim``), not Huey's.
    Huey reads the revocation keys before every task and deletes the task's key after it:
    two queue transactions per job (two Redis round trips) that find nothing. Revoking is
    refused instead, so that no key this skips can ever exist.
    """

    def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> bool:
        if key.startswith("r:"):  # a Task.revoke_id: never written (revoke is refused)
            return False
        return super().delete(key)  # type: ignore[misc]

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("spoolscp does not revoke Huey tasks: the job table decides what runs")

    revoke_all = revoke_by_id = revoke


class PipelineSqliteHuey(_NeverRevoked, SqliteHuey):
    """The default queue: SQLite, no revocation."""


class PipelineRedisHuey(_NeverRevoked, RedisHuey):
    """The queue for workers on several hosts: Redis, no revocation."""


def make_huey(settings: Settings) -> Huey:
    """SQLite by default; Redis when workers on several hosts share the queue."""
    if settings.queue_backend == "redis":
        return PipelineRedisHuey("spoolscp", url=settings.redis_url, results=False)
    if settings.queue_backend == "sqlite":
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        return PipelineSqliteHuey("spoolscp", filename=str(settings.queue_db), timeout=30, results=False,
                                  storage_class=WakeupStorage)
    raise ValueError(f"unknown queue backend {settings.queue_backend!r} (sqlite or redis)")


def open_queue(settings: Settings) -> Queue:
    huey = make_huey(settings)
    return Queue(huey, tasks.register(huey, settings))


def children_die_with(consumer: Consumer) -> None:
    """Have every process ``consumer`` forks (workers, scheduler) die when it dies.

    Huey's children ignore the consumer's signals and never look at their parent: with
    the consumer SIGKILLed they would go on taking tasks, with their old code and
    settings, beside the pool a restart brings. They get SIGKILL instead; what they
    were running is reclaimed as after any crash (``workers.recovery``). Call before
    ``consumer.run()``, in the process that runs it.
    """
    consumer_pid = os.getpid()
    init_child = consumer.environment.init_child

    def init(process: Any) -> None:
        parentdeath.die_with(consumer_pid, signal.SIGKILL)
        init_child(process)

    consumer.environment.init_child = init  # type: ignore[method-assign]
