"""The drop folder: DICOM files put into a folder enter the pipeline like received objects.

It runs inside the receiver (``[dropfolder] dir`` in ``pipeline.toml``), so a dropped
file gets exactly what a C-STORE gets: the same checks, a spool file, a job row, the
receiver's output options (``-od``, naming, sorting, ``-xcr``). Once its job row is
committed the file is deleted from the folder; a file that can never be stored (not
DICOM Part 10, a broken data set) moves to ``<dir>/.rejected/`` with an error logged.

When is a file complete? Writers either write elsewhere and rename into the folder, or
write in place and close. watchdog's inotify events are only hints (they are lost
while the receiver is down, or when the kernel queue overflows), so:

* every event, a rescan at start and one every ``rescan`` seconds add *candidates*;
* a candidate is taken when its size and mtime did not change between two looks,
  nobody holds it open (inotify's open/close events), and either its last event was a
  close after writing or a rename into the folder, or it has been quiet for ``settle``
  seconds (a writer whose events were missed, or a folder on NFS).

A file still being written is therefore seen, watched, and taken once finished. Names
starting with ``.`` or ending in ``.part`` / ``.tmp`` are never taken (write-then-rename).
If the receiver dies after committing a job but before deleting the file, the file is
ingested again at the next start: at least once, like a sender that re-sends.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta, encode_file_meta
from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from receiver.handlers import MAX_UID_IN_NAME, OUT_OF_RESOURCES, Peer, StoreHandler
from spoolscp import jobs
from spoolscp.rawdicom import SpoolInfo, scan_spool
from spoolscp.settings import Settings
from spoolscp.spool import fsync_dir, new_spool_name

log = logging.getLogger("spoolscp.dropfolder")

REJECTED = ".rejected"
CALLING_AE = "DROPFOLDER"
LOOK_INTERVAL = 0.25  # seconds between two looks at the candidates


def ignored(name: str) -> bool:
    """Temporary names of writers that write, then rename into the folder."""
    return name.startswith(".") or name.endswith((".part", ".tmp"))


@dataclass
class Candidate:
    """A file seen in the folder, and what its events said about it."""

    stat: tuple[int, int] | None = None  # (size, mtime_ns) at the previous look
    opens: int = 0  # opened minus closed, as inotify reported them
    finished: bool = False  # last event: closed after writing, or renamed into the folder


@dataclass(eq=False)  # watchdog keeps handlers in a set: hash by identity
class DropFolder(FileSystemEventHandler):
    """Watches ``inbox`` and feeds complete files to ``store.accept`` in name order."""

    inbox: Path
    incoming: Path  # the receiver's incoming/ folder: copies are spooled from there
    store: StoreHandler
    called_ae: str
    settle: float = 2.0
    rescan: float = 60.0
    _candidates: dict[str, Candidate] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)

    # -- watchdog's thread: note what happened, never do work here --------------------

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        path = Path(event.dest_path if isinstance(event, FileMovedEvent) else event.src_path)
        if path.parent != self.inbox or ignored(path.name):
            return
        with self._lock:
            candidate = self._candidates.setdefault(path.name, Candidate())
            if isinstance(event, FileOpenedEvent):
                candidate.opens += 1
            elif isinstance(event, (FileClosedEvent, FileClosedNoWriteEvent)):
                candidate.opens = max(candidate.opens - 1, 0)
            candidate.finished = isinstance(event, (FileClosedEvent, FileMovedEvent)) or (
                candidate.finished and isinstance(event, FileClosedNoWriteEvent)
            )

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(self, str(self.inbox), recursive=False)
        observer.start()
        loop = threading.Thread(target=self._loop, name="dropfolder", daemon=True)
        loop.start()
        self._threads = [observer, loop]
        log.info("watching drop folder %s", self.inbox)

    def stop(self) -> None:
        """Stop watching; a file being ingested is finished first."""
        self._stop.set()
        observer, loop = self._threads
        observer.stop()
        observer.join()
        loop.join()

    def _loop(self) -> None:
        next_rescan = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_rescan:
                    next_rescan = time.monotonic() + self.rescan
                    self.scan_folder()
                ready = self.ready_files()
                if ready:
                    self.ingest_batch(ready)
            except Exception:  # noqa: BLE001 - the folder must keep being watched; files wait
                log.exception("drop folder %s: unexpected error (the files stay for the next rescan)", self.inbox)
            self._stop.wait(LOOK_INTERVAL)

    # -- deciding what is complete ------------------------------------------------------

    def scan_folder(self) -> None:
        """Add every file in the folder: events may have been lost."""
        names = [p.name for p in self.inbox.iterdir() if not ignored(p.name) and p.is_file()]
        with self._lock:
            for name in names:
                self._candidates.setdefault(name, Candidate())

    def ready_files(self) -> list[Path]:
        """Candidates that are complete now, in name order; vanished ones are forgotten."""
        now = time.time()
        ready = []
        with self._lock:
            for name, candidate in list(self._candidates.items()):
                try:
                    st = (self.inbox / name).stat()
                except FileNotFoundError:
                    del self._candidates[name]
                    continue
                stat, candidate.stat = candidate.stat, (st.st_size, st.st_mtime_ns)
                quiet = now - st.st_mtime >= self.settle
                if stat == candidate.stat and candidate.opens == 0 and (candidate.finished or quiet):
                    ready.append(name)
                    del self._candidates[name]
        return [self.inbox / name for name in sorted(ready)]

    # -- taking files in -----------------------------------------------------------------

    def ingest_batch(self, paths: list[Path]) -> None:
        """One batch is one pseudo-association: studies end on it as on a sender's."""
        peer = Peer(assoc=uuid.uuid4().hex, calling_ae=CALLING_AE, called_ae=self.called_ae,
                    host="localhost", ip="127.0.0.1")
        for path in paths:
            self.ingest(path, peer)
        if peer.stored:
            self.store.wake(jobs.record_assoc_end(self.store.jobs_db, peer.assoc))

    def ingest(self, path: Path, peer: Peer) -> None:
        """Spool ``path`` like a received object; delete or reject the original."""
        try:
            info = scan_spool(path)
        except FileNotFoundError:
            return  # taken away meanwhile
        except OSError as exc:  # unreadable (permissions): left for the next rescan
            log.error("cannot read %s in the drop folder: %s", path.name, exc)
            return
        except ValueError as exc:  # BrokenDataSet, unknown transfer syntax
            self.reject(path, str(exc))
            return
        # as storescu sends a file: the data set's UIDs, whatever its meta says
        sop_class, sop_instance = info.sop_class_uid, info.sop_instance_uid
        if not sop_class or not sop_instance or len(sop_instance) > MAX_UID_IN_NAME:
            self.reject(path, "no usable SOP Class/Instance UID in the data set")
            return
        copy = self.incoming / new_spool_name()  # the name it keeps in the spool
        try:
            write_spool_copy(path, copy, info, sop_class, sop_instance)
        except OSError as exc:  # disk full: try again at the next rescan
            log.error("cannot copy %s from the drop folder: %s", path.name, exc)
            copy.unlink(missing_ok=True)
            return
        status, seq = self.store.accept(copy, info, sop_class, sop_instance, info.transfer_syntax, peer)
        copy.unlink(missing_ok=True)
        if seq is not None:
            path.unlink(missing_ok=True)
            fsync_dir(self.inbox)
            log.info("took %s from the drop folder as job %d (status 0x%04X)", path.name, seq, status)
        elif status != OUT_OF_RESOURCES:
            self.reject(path, f"refused with status 0x{status:04X}")

    def reject(self, path: Path, reason: str) -> None:
        log.error("drop folder: %s cannot be stored, moved to %s/: %s", path.name, REJECTED, reason)
        (self.inbox / REJECTED).mkdir(exist_ok=True)
        path.replace(self.inbox / REJECTED / path.name)


def write_spool_copy(source: Path, dest: Path, info: SpoolInfo, sop_class: str, sop_instance: str) -> None:
    """``source``'s data set bytes under a file meta like pynetdicom's (the spool contract:
    the meta names the UIDs the object is stored under and its transfer syntax)."""
    meta = encode_file_meta(create_file_meta(sop_class_uid=UID(sop_class), sop_instance_uid=UID(sop_instance),
                                             transfer_syntax=UID(info.transfer_syntax)))
    with source.open("rb") as src, dest.open("wb") as out:
        out.write(b"\0" * 128 + b"DICM" + meta)
        src.seek(info.dataset_offset)
        shutil.copyfileobj(src, out)


def start_for(settings: Settings, store: StoreHandler, called_ae: str) -> DropFolder | None:
    """The drop folder of ``settings``, watching; None when none is configured."""
    if settings.dropfolder is None:
        return None
    folder = DropFolder(settings.dropfolder, settings.incoming_dir, store, called_ae,
                        settings.dropfolder_settle, settings.dropfolder_rescan)
    folder.start()
    return folder
