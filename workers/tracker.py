"""The study tracker: everything storescp decides by reception order, decided durably.

Workers write objects in parallel, but storescp's study logic is sequential: which
folder an object goes to, its ``-tn`` name, when a study ends, and the order of the
commands that follow. :func:`track` walks the untracked rows of the job table in
sequence order, under one ``BEGIN IMMEDIATE`` transaction, and records each decision
in the table itself. Any worker may call it; whoever holds the lock advances the
cursor for everyone, and a crash rolls the whole step back.

End of study (spec §7), per object *N* of study *S* arriving on association *α*:

1. ``-tos``: every open study whose last object is at least ``-tos`` seconds older
   than *N* ends (timeout), before *N* is placed;
2. *S* is reused if open, else opened with a new folder (``-ss``/``-sp``: a new
   timestamp; ``-su``: the same name again);
3. *N* gets its name and, with ``-xcr``, its command line;
4. every other open study whose last object came on *α*, or on an association that
   had ended before *α* began, ends (study change).

With one association at a time this is exactly DCMTK's rule (one open study, closed
by the next object of another study). With concurrent associations, studies being
sent in parallel stay open side by side and never mix; each ends when its sender
moves on to another study, when a sender that began after its sender had ended sends
an object, or after ``-tos`` seconds without an object (Orthanc's "stable study").
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from spoolscp import jobs, naming
from workers import execs
from workers.studydirs import UnsafeStudyDir, patient_component, study_dir_name

log = logging.getLogger("spoolscp.worker")


@dataclass
class Study:
    id: int
    uid: str
    dir: str
    last_at: float
    last_assoc: str | None


class Tracker:
    """One tracking step's view of the tracker state, bound to an open transaction."""

    def __init__(self, c: sqlite3.Connection) -> None:
        self.c = c
        self.open = {
            row[1]: Study(*row)
            for row in c.execute("SELECT id, uid, dir, last_at, last_assoc FROM studies WHERE state = 'open'")
        }
        self.tn_last, self.tn_counter = c.execute("SELECT tn_last, tn_counter FROM tracker").fetchone()

    def succeeded(self, earlier: str | None, later: str | None) -> bool:
        """Did ``later`` begin after ``earlier`` had ended, one after the other as in DCMTK?

        Senders that overlap in time are concurrent: one's end says nothing about the
        other's study, which then ends by ``-tos`` (or when its own sender moves on).
        """
        ended = self.c.execute("SELECT ended FROM assocs WHERE id = ?", (earlier,)).fetchone()
        began = self.c.execute("SELECT first_seq FROM assocs WHERE id = ?", (later,)).fetchone()
        return bool(ended and ended[0] and began and began[0] and ended[0] < began[0])

    # -- names and folders ------------------------------------------------------

    def file_name(self, job: jobs.Job) -> str:
        opts = job.options
        ext = opts.get("extension", "")
        if opts.get("naming") == "unique":
            return naming.unique_name(job.sop_class, ext)
        if opts.get("naming") == "time":
            when = datetime.fromtimestamp(job.received_at)
            self.tn_last, self.tn_counter = naming.next_time_name(job.sop_class, ext, when, self.tn_last, self.tn_counter)
            return self.tn_last
        return naming.default_name(job.sop_class, job.sop_instance, ext)

    def new_folder_name(self, job: jobs.Job) -> str:
        """The folder of a new study, never one that another study already had.

        Two studies begun in one millisecond (concurrent senders) would get the same
        ``-ss``/``-sp`` name, and DCMTK would put both in it; the later one takes the
        next free millisecond instead.
        """
        opts = job.options
        patient = patient_component(job.patient_name, job.charset) if opts["sort"] == "patient" else None
        when = datetime.fromtimestamp(job.received_at)
        name = study_dir_name(opts["sort"], opts.get("sort_prefix", ""), job.study_uid, patient, when)
        while opts["sort"] != "uid" and self.c.execute("SELECT 1 FROM studies WHERE dir = ?", (name,)).fetchone():
            when += timedelta(milliseconds=1)
            name = study_dir_name(opts["sort"], opts.get("sort_prefix", ""), job.study_uid, patient, when)
        return name

    def open_study(self, job: jobs.Job) -> Study:
        """A new study: its folder is named and created now, in reception order."""
        opts = job.options
        name = self.new_folder_name(job)
        path = Path(opts["output_dir"]) / name
        shown = f"{opts['output_dir_display']}/{name}"
        try:
            os.mkdir(path)
            log.info("created new subdirectory for study: %s", shown)
            self.tn_counter = -1
        except FileExistsError:
            log.info("using existing subdirectory for study: %s", shown)
        study_id = self.c.execute(
            "INSERT INTO studies (uid, dir, state, opened_seq, last_seq, last_at, last_assoc)"
            " VALUES (?, ?, 'open', ?, ?, ?, ?)",
            (job.study_uid, name, job.seq, job.seq, job.received_at, job.assoc),
        ).lastrowid
        study = Study(int(study_id), job.study_uid, name, job.received_at, job.assoc)
        self.open[job.study_uid] = study
        return study

    # -- ends of study and commands ----------------------------------------------

    def close(self, study: Study, closed_by: str, trigger: jobs.Job) -> None:
        """End ``study``: queue its rename, then its ``-xcs`` command, in that order."""
        self.open.pop(study.uid, None)
        self.c.execute("UPDATE studies SET state = 'closed', closed_by = ? WHERE id = ?", (closed_by, study.id))
        opts = trigger.options
        after = None
        if opts.get("rename_on_eostudy"):
            after = jobs.insert(
                self.c,
                {"kind": "eos", "state": "waiting", "received_at": trigger.received_at, "study_id": study.id,
                 "options": {"output_dir": opts["output_dir"]}},
            )
        if opts.get("exec_on_eostudy"):
            command = execs.expand(
                opts["exec_on_eostudy"], p=f"{opts['output_dir_display']}/{study.dir}", f=None,
                a=trigger.calling_ae or "", c=trigger.called_ae or "", r=trigger.peer_host or "",
            )
            self.add_exec(command, trigger, after_seq=after, study_id=study.id)

    def add_exec(self, command: str, trigger: jobs.Job, after_seq: int | None, study_id: int | None) -> None:
        jobs.insert(
            self.c,
            {"kind": "exec", "state": "waiting", "received_at": trigger.received_at, "command": command,
             "after_seq": after_seq, "study_id": study_id, "sync": int(bool(trigger.options.get("exec_sync")))},
        )

    def close_expired(self, job: jobs.Job) -> None:
        """``-tos`` passed before ``job`` arrived: end those studies as the timer would have."""
        timeout = job.options.get("eostudy_timeout")
        expired = [s for s in self.open.values() if timeout is not None and job.received_at - s.last_at >= timeout]
        trigger = _latest_store(self.c, job.seq) if expired else None
        for study in expired:
            self.close(study, "timeout", trigger or job)

    def add_reception_exec(self, job: jobs.Job, p: str | None, f: str | None) -> None:
        """``-xcr`` for ``job``; it runs once the object is written (dispatch)."""
        command = execs.expand(
            job.options["exec_on_reception"], p=p, f=f,
            a=job.calling_ae or "", c=job.called_ae or "", r=job.peer_host or "",
        )
        self.add_exec(command, job, after_seq=job.seq, study_id=None)

    # -- one object ---------------------------------------------------------------

    def track_store(self, job: jobs.Job) -> dict[str, Any]:
        """Place one received object; returns the columns to record on its row."""
        opts = job.options
        study: Study | None = None
        if opts.get("sort"):
            self.close_expired(job)
            study = self.open.get(job.study_uid) or self.open_study(job)
        name = self.file_name(job)
        subdir = study.dir if study else ""
        if opts.get("exec_on_reception"):
            self.add_reception_exec(job, opts["output_dir_display"] + (f"/{subdir}" if subdir else ""), name)
        if study:
            self.c.execute("INSERT OR IGNORE INTO assocs (id, first_seq) VALUES (?, ?)", (job.assoc, job.seq))
            for other in [s for s in self.open.values() if s is not study]:
                if other.last_assoc == job.assoc or self.succeeded(other.last_assoc, job.assoc):
                    self.close(other, "change", job)
            study.last_at, study.last_assoc = job.received_at, job.assoc
            self.c.execute(
                "UPDATE studies SET last_seq = ?, last_at = ?, last_assoc = ? WHERE id = ?",
                (job.seq, job.received_at, job.assoc, study.id),
            )
        return {"study_id": study.id if study else None, "out_subdir": subdir, "out_name": name}

    def track_ignored(self, job: jobs.Job) -> dict[str, Any]:
        """``--ignore``: no folder, no name, no study change; ``-xcr`` keeps ``#p #f`` literal."""
        if job.options.get("exec_on_reception"):
            self.add_reception_exec(job, None, None)
        return {}

    def save(self) -> None:
        self.c.execute("UPDATE tracker SET tn_last = ?, tn_counter = ?", (self.tn_last, self.tn_counter))


def _untracked(c: sqlite3.Connection) -> list[jobs.Job]:
    rows = c.execute(
        f"SELECT {jobs.JOB_COLUMNS} FROM jobs WHERE tracked = 0 AND kind IN ('store', 'assoc_end', 'ignored')"
        " ORDER BY seq"
    ).fetchall()
    return [jobs.job_from_row(row) for row in rows]


def _record(c: sqlite3.Connection, seq: int, values: dict[str, Any]) -> None:
    sets = "".join(f", {k} = ?" for k in values)
    c.execute(f"UPDATE jobs SET tracked = 1{sets} WHERE seq = ?", (*values.values(), seq))


def place(c: sqlite3.Connection) -> int:
    """Place every untracked row inside the caller's transaction; returns how many.

    A job's claim runs it (``spoolscp.jobs.claim``) when the job's own row is not placed
    yet, in the claim's transaction.
    """
    todo = _untracked(c)
    if not todo:
        return 0
    tracker = Tracker(c)
    for job in todo:
        if job.kind == "assoc_end":
            c.execute(
                "INSERT INTO assocs (id, ended) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET ended = excluded.ended",
                (job.assoc, job.seq),
            )
            _record(c, job.seq, {"state": "done"})
            continue
        if job.kind == "ignored":
            _record(c, job.seq, tracker.track_ignored(job))
            continue
        try:
            _record(c, job.seq, tracker.track_store(job))
        except (UnsafeStudyDir, OSError) as exc:
            log.error("could not create subdirectory for study: %s", exc)
            _record(c, job.seq, {"state": "failed", "error": f"{type(exc).__name__}: {exc}"})
    tracker.save()
    return len(todo)


def track(db: jobs.JobDB) -> int:
    """Advance the tracker over every untracked row; returns how many rows it placed.

    An object that cannot be placed (an unsafe folder name, a folder that cannot be
    created) fails at once with its reason; the objects after it go on.
    """
    with db.transaction() as c:
        return place(c)


def _latest_store(c: sqlite3.Connection, before_seq: int | None = None) -> jobs.Job | None:
    """The most recent tracked object (before ``before_seq``): its association fills ``#a #c #r``."""
    row = c.execute(
        f"SELECT {jobs.JOB_COLUMNS} FROM jobs WHERE kind = 'store' AND tracked = 1 AND seq < ?"
        " ORDER BY seq DESC LIMIT 1",
        (before_seq if before_seq is not None else 1 << 62,),
    ).fetchone()
    return jobs.job_from_row(row) if row else None


def close_idle_studies(db: jobs.JobDB, now: float) -> None:
    """End open studies whose ``-tos`` has passed with no object (runs on a timer).

    Tracking and closing share one transaction, so an object that arrived just before
    the timer fired is placed first and keeps its study open.
    """
    with db.transaction() as c:
        place(c)
        tracker = Tracker(c)
        latest = _latest_store(c)
        for study in list(tracker.open.values()):
            last = c.execute(
                "SELECT options FROM jobs WHERE kind = 'store' AND study_id = ? ORDER BY seq DESC LIMIT 1",
                (study.id,),
            ).fetchone()
            timeout = json.loads(last[0]).get("eostudy_timeout") if last else None
            if latest is not None and timeout is not None and now - study.last_at >= timeout:
                # placeholders use the most recent association, as DCMTK does
                tracker.close(study, "timeout", latest)
