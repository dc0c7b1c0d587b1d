"""The task definitions: what a worker does with a job, and how lost work comes back.

``store_object(seq)`` turns one spooled object into its output file. It is idempotent:
it first claims the job row (``spoolscp.jobs.claim``), so a duplicated Huey message, or
one re-sent by the reconciler, finds the job done or running and does nothing.

``reconcile()`` runs at worker start and every minute: it re-enqueues jobs whose Huey
message was lost (a worker SIGKILLed mid-task, a receiver that died between commit
and enqueue).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from huey import Huey, crontab

from spoolscp import jobs, spool
from spoolscp.rawdicom import BrokenDataSet
from spoolscp.settings import Settings
from workers.encoder import CannotWrite
from workers.output import write_job_output

log = logging.getLogger("spoolscp.worker")

# Failures that no retry can cure: fail the job at once, with its reason.
PERMANENT = (BrokenDataSet, CannotWrite, FileNotFoundError)


@dataclass(frozen=True)
class Tasks:
    store_object: Any
    reconcile: Any


_dbs: dict[tuple[int, str], jobs.JobDB] = {}


def job_db(settings: Settings) -> jobs.JobDB:
    """One connection per process (Huey forks process workers after start-up)."""
    key = (os.getpid(), str(settings.jobs_db))
    if key not in _dbs:
        _dbs[key] = jobs.JobDB(settings.jobs_db)
    return _dbs[key]


def run_store(settings: Settings, seq: int, last_attempt: bool) -> None:
    """Write one job's output, then mark it done, then drop its spool file."""
    db = job_db(settings)
    job = jobs.claim(db, seq, settings.lease_seconds)
    if job is None:
        return
    try:
        write_job_output(job, settings.spool_dir / job.spool)
    except PERMANENT as exc:
        log.error("cannot write DICOM file: %s: %s", job.out_name, exc)
        jobs.mark_error(db, seq, f"{type(exc).__name__}: {exc}", final=True)
        return
    except Exception as exc:
        log.error("cannot write DICOM file: %s: %s", job.out_name, exc)
        jobs.mark_error(db, seq, f"{type(exc).__name__}: {exc}", final=last_attempt)
        raise
    jobs.mark_done(db, seq)
    spool.remove(settings.spool_dir, job.spool)


def run_reconcile(settings: Settings, enqueue: Any) -> int:
    """Re-enqueue every job that has no live worker and no pending message; return the count."""
    db = job_db(settings)
    seqs = jobs.recoverable(db, stale_after=settings.lease_seconds / 10)
    for seq in seqs:
        enqueue(seq)
    if seqs:
        log.warning("re-queued %d job(s) whose work was lost", len(seqs))
    return len(seqs)


def register(huey: Huey, settings: Settings) -> Tasks:
    """Define the tasks on ``huey`` with the retry policy of ``settings``."""

    @huey.task(
        name="spoolscp.store_object",
        retries=settings.retries,
        retry_delay=settings.retry_delay,
        retry_backoff=settings.retry_backoff,
        context=True,
    )
    def store_object(seq: int, task: Any = None) -> None:
        run_store(settings, seq, last_attempt=task is None or task.retries == 0)

    @huey.periodic_task(crontab(minute="*"), name="spoolscp.reconcile")
    def reconcile() -> None:
        run_reconcile(settings, lambda seq: huey.enqueue(store_object.s(seq)))

    return Tasks(store_object=store_object, reconcile=reconcile)
