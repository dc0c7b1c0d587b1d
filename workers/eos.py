"""``--rename-on-eostudy``: rename a finished study's files to ``<XY><NNNNNN>`` (spec §9).

The renames are planned once and stored on the job row, then carried out; re-running
after a crash skips what is already renamed. Unlike DCMTK, an existing target (a
``-su`` study that ended before) is never replaced: the counter moves past it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from spoolscp import jobs
from spoolscp.spool import fsync_dir

log = logging.getLogger("spoolscp.worker")


def rename_code(name: str, time_names: bool) -> str:
    """The two characters DCMTK takes from a file name for its new name."""
    if not time_names:
        return name[:2]
    underscore = name.find("_")
    return name[underscore + 6 : underscore + 8] if underscore >= 0 else name[18:20]


def plan(db: jobs.JobDB, job: jobs.Job) -> list[tuple[str, str]]:
    """``(old, new)`` names in the study folder, in reception order; stored on first use."""
    if job.plan:
        return [tuple(pair) for pair in json.loads(job.plan)]
    rows = db.execute(
        "SELECT out_name, options FROM jobs WHERE kind = 'store' AND study_id = ? ORDER BY seq", (job.study_id,)
    )
    folder = study_folder(db, job)
    pairs, counter = [], 0
    for name, options in rows:
        code = rename_code(name, json.loads(options).get("naming") == "time")
        counter += 1
        while (folder / f"{code}{counter:06d}").exists():
            counter += 1
        pairs.append((name, f"{code}{counter:06d}"))
    db.execute("UPDATE jobs SET plan = ? WHERE seq = ?", (json.dumps(pairs), job.seq))
    return pairs


def study_folder(db: jobs.JobDB, job: jobs.Job) -> Path:
    subdir = db.execute("SELECT dir FROM studies WHERE id = ?", (job.study_id,))[0][0]
    return Path(job.options["output_dir"]) / subdir


def rename_study(db: jobs.JobDB, job: jobs.Job) -> None:
    """Carry out the plan; a file already renamed (a re-run) is skipped."""
    folder = study_folder(db, job)
    for old, new in plan(db, job):
        source, target = folder / old, folder / new
        if source.exists():
            os.replace(source, target)
        elif not target.exists():
            log.warning("cannot rename file '%s' to '%s'", source, target)
    fsync_dir(folder)
