"""The task definitions: what a worker does with a job row, and how lost work comes back.

One Huey task, ``run_job(seq)``, runs whatever the row says (``kind``):

* ``store``: track it (folder, name, follow-ups), write its output file, mark it done,
  drop its spool data or file;
* ``eos``: rename the files of a study that ended;
* ``exec``: run one ``-xcr``/``-xcs`` command line; a non-zero exit is retried.

Every run first claims its row (``spoolscp.jobs.claim``): a duplicated Huey message,
or one re-sent by the reconciler, finds the row done or running and does nothing.
After each step, :func:`release_followups` hands the next commands to the queue in
storescp's order (``workers.dispatch``).

``study_timeout`` fires ``-tos`` seconds after an object to end idle studies;
``reconcile`` runs at worker start and every minute and re-enqueues rows whose Huey
message was lost (a SIGKILLed worker, a receiver that died before enqueueing).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection

from huey import Huey, crontab

from spoolscp import jobs, spool
from spoolscp.rawdicom import BrokenDataSet
from spoolscp.settings import Settings
from workers import dispatch, eos, execs, recovery, tracker
from workers.encoder import CannotWrite
from workers.output import write_job_output

log = logging.getLogger("spoolscp.worker")

# Failures that no retry can cure: fail the job at once, with its reason.
PERMANENT = (BrokenDataSet, CannotWrite, FileNotFoundError, IsADirectoryError)



@dataclass(frozen=True)
class Handoff:
    """How a running task hands work on: a row to run, or an end-of-study check later."""

    enqueue: Callable[[int], None]
    check_studies_in: Callable[[float], None]


@dataclass(frozen=True)
class Tasks:
    run_job: Any
    study_timeout: Any
    reconcile: Any


_dbs: dict[tuple[int, str], jobs.JobDB] = {}
_last: tuple[int, Settings, jobs.JobDB] | None = None  # every job asks: no Path arithmetic for it


def job_db(settings: Settings) -> jobs.JobDB:
    """One connection per process (Huey forks process workers after start-up); workers
    write only through transactions (``direct_writes=False``)."""
    global _last
    pid = os.getpid()
    if _last is not None and _last[0] == pid and _last[1] is settings:
        return _last[2]
    key = (pid, str(settings.jobs_db))
    if key not in _dbs:
        _dbs[key] = jobs.JobDB(settings.jobs_db, direct_writes=False)
    _last = (pid, settings, _dbs[key])
    return _dbs[key]


def release_followups(db: jobs.JobDB, enqueue: Callable[[int], None]) -> None:
    for seq in dispatch.dispatch(db):
        enqueue(seq)


def run_store(settings: Settings, db: jobs.JobDB, job: jobs.Job) -> str | None:
    """Write one object's output from its spool bytes (job table) or spool file; either
    goes only once the output is durable (:func:`run`)."""
    def publish(path: Path, move: Callable[[], None]) -> bool:
        return jobs.publish(db, job.seq, path, move)

    source = jobs.spool_data(db, job.seq) or settings.spool_dir / job.spool
    if write_job_output(job, source, publish) is None:
        return "superseded: a later reception of the same name was stored"
    return None


def run_eos(settings: Settings, db: jobs.JobDB, job: jobs.Job) -> str | None:
    eos.rename_study(db, job)
    return None


def run_exec(settings: Settings, db: jobs.JobDB, job: jobs.Job) -> str | None:
    """Run the command; skipped (done, with a note) when its object was not stored."""
    if job.after_seq is not None:
        target = jobs.get_job(db, job.after_seq)
        if target is not None and target.kind == "store" and target.state != "done":
            return "skipped: the object was not stored"

    def started(pid: int) -> None:
        db.write("UPDATE jobs SET child_pid = ? WHERE seq = ?", (pid, job.seq))

    status = execs.run_once(job.command, settings.state_dir / "exec" / f"{job.seq}.status", job.child_pid, started)
    if status != 0:
        raise execs.CommandFailed(f"exit status {status}: {job.command}")
    return None


RUNNERS = {"store": run_store, "eos": run_eos, "exec": run_exec}


def run(settings: Settings, seq: int, last_attempt: bool, handoff: Handoff) -> None:
    """Claim row ``seq``, run its step, record the outcome, release what may follow."""
    db = job_db(settings)
    enqueue = handoff.enqueue
    job = jobs.claim(db, seq, settings.lease_seconds, place=tracker.place)
    if job is None:  # a marker row (end of association, ignored object) may still end a study
        release_followups(db, enqueue)
        return
    timeout = job.options.get("eostudy_timeout") if job.kind == "store" else None
    if timeout is not None:
        handoff.check_studies_in(timeout + 0.05)
    if job.kind == "exec":
        release_followups(db, enqueue)  # an asynchronous command lets the next one start
    try:
        note = RUNNERS[job.kind](settings, db, job)
    except KeyboardInterrupt:  # a graceful shutdown ran out of time: hand the job back
        jobs.release(db, seq)
        enqueue(seq)
        raise
    except PERMANENT as exc:
        log.error("job %d (%s) failed: %s: %s", seq, job.kind, type(exc).__name__, exc)
        jobs.mark_error(db, seq, f"{type(exc).__name__}: {exc}", final=True)
    except Exception as exc:
        log.error("job %d (%s) failed: %s: %s", seq, job.kind, type(exc).__name__, exc)
        jobs.mark_error(db, seq, f"{type(exc).__name__}: {exc}", final=last_attempt)
        release_followups(db, enqueue)
        raise
    else:
        held = jobs.mark_done(db, seq, note)
        if job.kind == "store" and not held:  # a spool file, not bytes in the job table
            spool.remove(settings.spool_dir, job.spool)
    release_followups(db, enqueue)


def run_reconcile(settings: Settings, enqueue: Callable[[int], None],
                  waiting: Collection[int] = ()) -> recovery.Recovered:
    """Re-enqueue every job that has no live worker and no message (``waiting``: jobs that
    have one, :func:`workers.recovery.jobs_with_messages`); sweep the spool, and shrink
    jobs.db when finished small objects left much free space in it."""
    db = job_db(settings)
    tracker.close_idle_studies(db, time.time())  # places untracked rows first
    seqs = [seq for seq in recovery.lost_messages(db, settings) if seq not in waiting]
    for seq in seqs:
        enqueue(seq)
    if seqs:
        log.warning("re-queued %d job(s) whose work was lost", len(seqs))
    release_followups(db, enqueue)
    removed = recovery.sweep_spool(settings.spool_dir, db, orphan_age=settings.lease_seconds)
    freed = jobs.reclaim_space(db)
    if freed:
        log.info("gave %d free pages of jobs.db (finished small objects) back to the file system", freed)
    return recovery.Recovered(seqs, removed)


def register(huey: Huey, settings: Settings) -> Tasks:
    """Define the tasks on ``huey`` with the retry policy of ``settings``."""

    def enqueue(seq: int) -> None:
        huey.enqueue(run_job.s(seq))

    checks_due: set[int] = set()  # whole seconds this process has a -tos check scheduled for

    def check_studies_in(delay: float) -> None:
        """One check per second and process, not one per object: Huey's scheduler wakes
        once a second anyway, and the check judges every open study by its last object."""
        now = time.time()
        due = math.ceil(now + delay)
        checks_due.difference_update([s for s in checks_due if s < now])
        if due not in checks_due:
            checks_due.add(due)
            study_timeout.schedule(delay=due - now)

    handoff = Handoff(enqueue, check_studies_in)

    @huey.task(
        name=recovery.RUN_JOB,
        retries=settings.retries,
        retry_delay=settings.retry_delay,
        retry_backoff=settings.retry_backoff,
        context=True,
    )
    def run_job(seq: int, task: Any = None) -> None:
        run(settings, seq, last_attempt=task is None or task.retries == 0, handoff=handoff)

    @huey.task(name="spoolscp.study_timeout")
    def study_timeout() -> None:
        db = job_db(settings)
        tracker.close_idle_studies(db, time.time())
        release_followups(db, enqueue)

    @huey.periodic_task(crontab(minute="*"), name="spoolscp.reconcile")
    def reconcile() -> None:
        run_reconcile(settings, enqueue, recovery.jobs_with_messages(huey))

    return Tasks(run_job=run_job, study_timeout=study_timeout, reconcile=reconcile)
