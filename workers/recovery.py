"""Finding work that was lost between the job table, Huey's queue and the spool folder.

The job table is the truth, but two other places can disagree with it after a crash:

* Huey's queue: a worker deletes a message before running it, and the scheduler
  deletes due retries before enqueueing them, so a SIGKILL loses messages. Rows
  without a live worker are found by :func:`spoolscp.jobs.recoverable` and
  :func:`spoolscp.jobs.overdue_scheduled`.
* The spool folder: a worker killed after marking a job done but before removing
  its spool file leaves the file behind; a receiver killed between making a spool
  file durable and recording its row leaves a file that was never acknowledged
  (the sender still owns the object and sends it again). :func:`sweep_spool`
  removes both kinds. Files of unfinished or failed jobs stay: they are the work.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from huey import Huey

from spoolscp import jobs, spool
from spoolscp.settings import Settings

log = logging.getLogger("spoolscp.worker")

RUN_JOB = "spoolscp.run_job"  # the Huey name of workers.tasks.run_job


@dataclass(frozen=True)
class Recovered:
    """What one reconciler run did (``spoolscp queue recover --json`` prints it)."""

    requeued: list[int] = field(default_factory=list)
    spool_removed: list[str] = field(default_factory=list)


def jobs_with_messages(huey: Huey) -> set[int]:
    """Jobs that already have a Huey message waiting (ready or scheduled): a new one would
    only be a duplicate. Without this, every worker start re-sent one per queued job."""
    return {t.args[0] for t in (*huey.pending(), *huey.scheduled()) if t.name == RUN_JOB and t.args}


def longest_retry_delay(settings: Settings) -> float:
    """The delay before the last retry: a scheduled row later than this lost its message."""
    return settings.retry_delay * settings.retry_backoff ** max(settings.retries - 1, 0)


def lost_messages(db: jobs.JobDB, settings: Settings) -> list[int]:
    """Rows that need a new Huey message: no live worker, no message likely on its way."""
    grace = settings.lease_seconds / 10
    seqs = jobs.recoverable(db, stale_after=grace)
    return sorted(seqs + jobs.overdue_scheduled(db, longest_retry_delay(settings) + grace))


def sweep_spool(spool_dir: Path, db: jobs.JobDB, orphan_age: float) -> list[str]:
    """Remove spool files whose job is done, and files without a job older than ``orphan_age``.

    The folder is listed before the table is read: a file whose row is committed in
    between looks like an orphan, and the age keeps it (the receiver records a row
    right after the rename, so ``orphan_age`` only has to exceed that moment). A file
    whose receiver still runs here is never an orphan, however old: that receiver may
    yet commit its row and acknowledge it.
    """
    if not spool_dir.is_dir():
        return []
    now = time.time()
    listed = _listing(spool_dir)
    states = jobs.spool_states(db)
    removed = []
    for name, mtime in listed:
        state = states.get(name)
        orphan = state is None and now - mtime >= orphan_age and not jobs.pid_alive(spool.writer_pid(name))
        if state == "done" or orphan:
            log.debug("removing spool file %s (%s)", name, "job done" if state else "never acknowledged")
            spool.remove(spool_dir, name)
            removed.append(name)
    return removed


def _listing(spool_dir: Path) -> list[tuple[str, float]]:
    """Spool file names and mtimes; a file a worker removes meanwhile is skipped."""
    found = []
    for path in spool_dir.glob("*.dcm"):
        try:
            found.append((path.name, path.stat().st_mtime))
        except FileNotFoundError:
            continue
    return found
