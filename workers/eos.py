"""``--rename-on-eostudy``: rename a finished study's files to ``<XY><NNNNNN>`` (spec §9).

The renames are planned once and stored on the job row, then carried out; re-running
after a crash skips what is already renamed. Unlike DCMTK, an existing target (a
``-su`` study that ended before) is never replaced: the counter moves past every
number already used in the folder, so ``CT000001 MR000002`` are followed by ``CT000003``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from spoolscp import jobs
from spoolscp.spool import fsync_dir

log = logging.getLogger("spoolscp.worker")

_RENAMED = re.compile(r"[A-Za-z0-9]{2}[0-9]{6}")


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
    taken = _numbers_in_use(study_folder(db, job))
    pairs, counter = [], 0
    for name, options in rows:
        code = rename_code(name, json.loads(options).get("naming") == "time")
        counter += 1
        while counter in taken:
            counter += 1
        pairs.append((name, f"{code}{counter:06d}"))
    db.write("UPDATE jobs SET plan = ? WHERE seq = ?", (json.dumps(pairs), job.seq))
    return pairs


def _numbers_in_use(folder: Path) -> set[int]:
    """Counters of ``<XY><NNNNNN>`` files already there (a ``-su`` study that ended before)."""
    return {int(p.name[2:]) for p in folder.iterdir() if _RENAMED.fullmatch(p.name)}


def study_folder(db: jobs.JobDB, job: jobs.Job) -> Path:
    subdir = db.execute("SELECT dir FROM studies WHERE id = ?", (job.study_id,))[0][0]
    return Path(job.options["output_dir"]) / subdir


def rename_study(db: jobs.JobDB, job: jobs.Job) -> None:
    """Carry out the plan; a file already renamed (a re-run) is skipped."""
    folder = study_folder(db, job)
    for old, new in plan(db, job):
        source, target = folder / old, folder / new
        if source.exists():
            _move_without_replacing(source, target)
        elif not target.exists():
            log.warning("cannot rename file '%s' to '%s'", source, target)
    fsync_dir(folder)


def _move_without_replacing(source: Path, target: Path) -> None:
    """``rename(2)`` that never replaces a file: link, then unlink (a re-run finishes it)."""
    try:
        os.link(source, target)
    except FileExistsError:
        if not os.path.samefile(source, target):
            log.warning("cannot rename file '%s' to '%s': target exists, both kept", source, target)
            return
    os.unlink(source)
