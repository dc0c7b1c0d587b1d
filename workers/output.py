"""Writing one output file: atomically, durably, and the same on every re-run.

The file is written under a temporary name in the output folder, fsynced, renamed
over its final name and the folder fsynced, so a reader never sees half a file and a
crash leaves either the old state or the new one. When the spool file already is the
output byte for byte, the temporary name is a hard link to it instead
(:func:`link_durably`): a large object's bytes are then written once, as storescp
writes them, not a second time by the worker. The rename goes through a
``publish`` callback (:func:`spoolscp.jobs.publish`), which skips it when a later
reception of the same name has already been written: the newest object wins, as in
storescp, even though workers finish in any order.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from pathlib import Path
from typing import Callable

from spoolscp.jobs import Job
from spoolscp.rawdicom import SpoolSource
from spoolscp.spool import fsync_dir
from workers.encoder import Encoding, output_plan

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
        write_durably(source, tmp, encoding, job.calling_ae)
        published = publish(final, lambda: move_into_place(tmp, final))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not published:
        tmp.unlink()
        log.info("not storing %s: a later reception of the same name is already stored", shown)
        return None
    fsync_dir(out_dir)
    return final


def move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` over ``final``, leaving no ``tmp`` behind.

    When both are links to one spool file (an attempt killed after its rename, before
    its job was done, then run again) ``rename`` succeeds and does nothing (POSIX): the
    output is in place already, and the second name is removed here.
    """
    os.replace(tmp, final)
    tmp.unlink(missing_ok=True)


def write_durably(source: SpoolSource, path: Path, encoding: Encoding, calling_ae: str | None) -> None:
    """Write the output at ``path`` (replaced, never truncated: an earlier attempt may have
    left a link to the spool file there) and make its bytes durable."""
    with output_plan(source, encoding, calling_ae) as plan:
        path.unlink(missing_ok=True)
        if not plan.is_spool_file() or not link_durably(Path(source), path):  # (a file: job-table bytes never are)
            with open(path, "xb") as f:
                plan.emit(f)
                f.flush()
                os.fsync(f.fileno())


# Why a link cannot be made here: another file system, hard links refused (protected
# links, a file system without them) or too many; the output is then copied.
_NO_LINK = frozenset((errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOSYS, errno.EOPNOTSUPP))


def link_durably(spool_file: Path, path: Path) -> bool:
    """Make ``path`` a hard link to ``spool_file`` (durable already: the receiver fsynced it)
    with the mode a new file of this process gets; False where that cannot be done.

    Only for a spool file of our own user: the output's owner is then the one a copy
    would have. The fsync makes the link count and the mode durable (no data is left to
    write); the caller's folder fsync makes the name durable. The spool's own name goes
    when the job is done (``spoolscp.spool.remove``) and leaves the output alone.
    """
    if os.stat(spool_file).st_uid != os.geteuid():
        return False
    try:
        os.link(spool_file, path)
    except OSError as exc:
        if exc.errno in _NO_LINK:
            return False
        raise
    try:
        os.chmod(path, 0o666 & ~_umask())
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return True


@functools.cache
def _umask() -> int:
    """This process's umask, read without changing it (Linux); else set and set back once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
