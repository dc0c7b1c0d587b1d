"""The spool contract between the receiver and the workers.

A spool file is a complete DICOM Part 10 file as pynetdicom's chunked receive writes it:

* a 128-byte preamble and ``DICM``;
* a file meta group (explicit VR little endian, with a group length) whose
  (0002,0002)/(0002,0003) are the C-STORE request's Affected SOP Class/Instance UIDs
  and whose (0002,0010) is the transfer syntax accepted for the presentation context;
  readers use only these three. The rest is what storescp's output file carries
  (spoolscp's implementation UID and version name, the calling AE title:
  ``receiver.filemeta``), so that a spool file whose data set needs no re-encoding is
  the output byte for byte;
* the data set bytes exactly as they arrived on the network, never decoded.

The receiver writes it under ``incoming/``, renames it into the spool folder, fsyncs it
and the folder, then records a job row (``spoolscp.jobs``). Only then is the
object acknowledged. A worker reads the spool file, writes the output (or, when the
output is the spool file byte for byte and on the same file system, makes it a hard
link to the spool file: ``workers.output``), marks the job done and only then removes
the spool file's name. A spool file is therefore on disk for every job that is not
done, and a spool file without a job row was never acknowledged.

A small object (up to ``spool_in_db_max`` bytes, ``pipeline.toml`` [state]) never
becomes a file: its job keeps the same kind of name, and the same bytes go into the
job table's ``spool_data`` (under the job's seq) in the very commit that records the
job, and leave it in the commit that marks the job done. One fsync (the job table's)
then makes the object durable instead of three (file, folder, job table), and no file
is created or deleted per object: on ext4 without a journal, as here, allocating an
inode right after others were deleted costs up to half a millisecond of kernel time.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Protocol

_counter = itertools.count()
_counter_lock = threading.Lock()


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_spool_name() -> str:
    """A name unique across processes and restarts: time, pid, per-process counter."""
    with _counter_lock:
        n = next(_counter)
    return f"{time.time_ns()}-{os.getpid()}-{n}.dcm"


def writer_pid(name: str) -> int | None:
    """The pid of the process that spooled ``name`` (see :func:`new_spool_name`)."""
    parts = name.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class FolderSync(Protocol):
    """Folder fsyncs run elsewhere (``receiver.foldersync``): ask after a rename, wait later."""

    def request(self) -> int: ...

    def wait(self, ticket: int) -> None: ...


def commit(received: Path, spool_dir: Path, folder_sync: FolderSync) -> str:
    """Make a completely received file durable in the spool and return its name.

    The file keeps its name, already a :func:`new_spool_name` (``receiver.diskfull``
    and the drop folder create it so), and must live on the same file system as
    ``spool_dir`` (pynetdicom's temp folder is pointed at ``spool_dir/incoming`` for
    that reason). It is renamed before its fsync: a journalling file system then
    commits the rename with the data, and the folder's fsync (``folder_sync``, run at
    the same time) has next to nothing left to do. A file renamed but not yet recorded
    is, like any spool file without a job, one that was never acknowledged.
    """
    name = received.name
    os.replace(received, spool_dir / name)
    try:
        ticket = folder_sync.request()
        fd = os.open(spool_dir / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        folder_sync.wait(ticket)
    except OSError:
        (spool_dir / name).unlink(missing_ok=True)
        raise
    return name


def remove(spool_dir: Path, name: str) -> None:
    """Drop a spool file whose output is durable; a missing file is already done.

    The removal is not fsynced: its job is durably done (or was never acknowledged)
    first, and a file that a crash brings back is one the reconciler's sweep removes.
    """
    try:
        os.unlink(spool_dir / name)
    except FileNotFoundError:
        return
