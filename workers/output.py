"""Writing one output file: atomically, durably, and the same on every re-run.

The file is written under a temporary name in the output folder, fsynced, renamed
over its final name and the folder fsynced, so a reader never sees half a file and a
crash leaves either the old state or the new one. The rename goes through a
``publish`` callback (:func:`spoolscp.jobs.publish`), which skips it when a later
reception of the same name has already been written: the newest object wins, as in
storescp, even though workers finish in any order.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from spoolscp.jobs import Job
from spoolscp.rawdicom import SpoolSource
from spoolscp.spool import fsync_dir
from workers.encoder import Encoding, write_output

log = logging.getLogger("spoolscp.worker")


def temp_name(job: Job) -> str:
    """Hidden, per-job: a crashed attempt's leftover is recognisable and overwritten next time."""
    return f".spoolscp-{job.seq}.tmp"


Publish = Callable[[Path, Callable[[], None]], bool]


def write_job_output(job: Job, source: SpoolSource, publish: Publish) -> Path | None:
    """Write ``job``'s output file from its spool file or bytes (``source``) and return its
    path (None: a later object holds it)."""
    options = job.options
    encoding = Encoding.from_options(options["encoding"])
    out_dir = Path(options["output_dir"], job.out_subdir or "")
    final = out_dir / job.out_name
    shown = "/".join(filter(None, (options["output_dir_display"], job.out_subdir, job.out_name)))
    if not encoding.bit_preserving:
        log.info("storing DICOM file: %s", shown)
        if final.exists():
            log.warning("DICOM file already exists, overwriting: %s", shown)
    tmp = out_dir / temp_name(job)
    try:
        with open(tmp, "wb") as f:
            write_output(source, f, encoding, job.calling_ae)
            f.flush()
            os.fsync(f.fileno())
        published = publish(final, lambda: os.replace(tmp, final))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not published:
        tmp.unlink()
        log.info("not storing %s: a later reception of the same name is already stored", shown)
        return None
    fsync_dir(out_dir)
    return final
