"""The Huey application: one factory that every process calls with the same settings.

The receiver (to enqueue), the consumer (to run) and the queue CLI (to inspect) all
build their queue here, so task names and storage always agree.

>>> queue = open_queue(load_settings(state_dir="/tmp/demo"))   # doctest: +SKIP
>>> queue.enqueue(1)                                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from huey import Huey, RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

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
    """Huey's SQLite queue without an fsync per message.

    A message only wakes a worker up; the job row (committed with fsync) is the truth,
    and the reconciler re-sends the message of a queued job that has none. WAL with
    ``synchronous=NORMAL`` loses at most the last messages on power loss, never the file.
    """

    def _create_connection(self):  # type: ignore[no-untyped-def]
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def make_huey(settings: Settings) -> Huey:
    """SQLite by default; Redis when workers on several hosts share the queue."""
    if settings.queue_backend == "redis":
        return RedisHuey("spoolscp", url=settings.redis_url, results=False)
    if settings.queue_backend == "sqlite":
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("spoolscp", filename=str(settings.queue_db), timeout=30, results=False,
                          storage_class=WakeupStorage)
    raise ValueError(f"unknown queue backend {settings.queue_backend!r} (sqlite or redis)")


def open_queue(settings: Settings) -> Queue:
    huey = make_huey(settings)
    return Queue(huey, tasks.register(huey, settings))
