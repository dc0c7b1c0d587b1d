"""The chunked-receive spool file: cheap to create, one write for a small object, and a
full disk answered 0xA700, as DCMTK does, instead of hanging the peer.

pynetdicom writes a chunked C-STORE data set into a ``NamedTemporaryFile`` fragment by
fragment. :func:`install` gives it a :class:`SpoolingFile` instead:

* its name is :func:`spoolscp.spool.new_spool_name` (time, pid, counter: unique across
  processes and restarts) in ``incoming/``, opened with ``O_EXCL`` only when data must
  reach the disk: tempfile's random names and its file object cost about 40 us per
  object, and creating a file on this ext4 (no journal) 20-600 us of kernel time;
* the data is kept in memory up to :data:`writebehind.CHUNK` and written a chunk at a
  time; a small object is written once, when it is complete, with no write-behind
  (its fsync follows at once), or never: :meth:`SpoolingFile.held` hands it to the
  C-STORE handler, which stores it in the job table (``spoolscp.spool``);
* when the spool's file system is full, the write raises inside the association's
  reactor thread (the association is aborted at best). The file remembers the first
  write error instead of raising it, frees what it had written, and swallows the rest
  of the data set; the C-STORE handler then asks :meth:`SpoolingFile.write_error` and answers
  "Out of Resources". Nothing is acknowledged that is not on disk, and the
  association stays usable for objects that fit later.

A file left in ``incoming/`` by a killed receiver is never acknowledged; the receiver
deletes it at start (``receiver.server.prepare_spool``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from pynetdicom import dimse_messages

from receiver import writebehind
from spoolscp import spool

class SpoolingFile:
    """The chunked-receive file (``NamedTemporaryFile``'s interface as pynetdicom uses
    it: ``name``, ``write``, ``file.flush``, ``close``) whose writes never raise."""

    def __init__(self, dir: str | None = None, **_: Any) -> None:  # noqa: A002 - tempfile's name
        self.name = _free_name(dir or tempfile.gettempdir())
        self._fd = -1  # no file until data must reach the disk (``_write_pending``)
        self.file = self  # pynetdicom calls ``.file.flush()``
        self.failed = False
        self._error: OSError | None = None  # the first write error, until it is asked for
        self._pending: list[bytes | memoryview] = []  # received, not yet handed to the kernel
        self._pending_size = 0
        self._size = 0  # bytes handed to the kernel
        self._write_behind = writebehind.WriteBehind()

    def write(self, data: bytes | memoryview) -> int:
        """Keep ``data`` (no copy: pynetdicom's fragments are immutable; anything else is
        copied), to be written with the rest of its chunk in one ``writev``."""
        if data and not self.failed:  # (an empty one would stall the writev loop)
            if not isinstance(data, bytes) and not (isinstance(data, memoryview) and data.readonly):
                data = bytes(data)
            self._pending.append(data)
            self._pending_size += len(data)
        return len(data)

    def flush(self) -> None:
        """pynetdicom flushes after every PDU; the data goes to the kernel a chunk at a
        time instead (one write, and its write-behind, per chunk rather than per PDU)."""
        if not self.failed and self._write_behind.due(self._size + self._pending_size):
            self._write_pending()
            self._write_behind.start(self._fd, self._size)

    def flush_all(self) -> None:
        """Everything received so far to the kernel, before anyone reads the file. No
        write-behind: the fsync that makes the complete file durable comes next."""
        if not self.failed:
            self._write_pending()

    def held(self, limit: int) -> bytes | None:
        """The complete object, if it is still only in memory and at most ``limit`` bytes.

        The caller takes it over, instead of calling :meth:`write_error` and reading the
        file: the file is then never created (``close`` writes only to a file that
        exists, so an object no one asked for never reaches the disk either).
        """
        if self._fd >= 0 or self.failed or self._pending_size > limit:
            return None
        data = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        return data

    def write_error(self) -> OSError | None:
        """Flush what is still buffered, then return the error that kept the object from
        being written completely (and forget it: it is reported once), if any."""
        self.flush_all()
        error, self._error = self._error, None
        return error

    def close(self) -> None:
        if self._fd >= 0:
            self.flush_all()
            fd, self._fd = self._fd, -1
            self._guard(os.close, fd)

    def __del__(self) -> None:  # an abandoned transfer: pynetdicom never closes its file
        if getattr(self, "_fd", -1) >= 0:  # (no descriptor if the file could not be created)
            os.close(self._fd)

    def _write_pending(self) -> None:
        if self._fd < 0:
            fd = self._guard(_create, self.name)
            if fd is None:
                return
            self._fd = fd
        pending, self._pending = self._pending, []
        self._size += self._pending_size
        self._pending_size = 0
        while pending and not self.failed:  # a short write only before an error
            _drop(pending, self._guard(os.writev, self._fd, pending[:_IOV_MAX]) or 0)

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as exc:
            if self.failed:
                return None
            self.failed = True
            self._error = exc
            with contextlib.suppress(OSError):  # give the space back to the objects being received
                os.truncate(self.name, 0)
            return None


_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16


def _drop(buffers: list[bytes | memoryview], count: int) -> None:
    """Remove the first ``count`` bytes (a write's result) from the front of ``buffers``."""
    while count and buffers:
        first = buffers[0]
        if len(first) <= count:
            count -= len(first)
            del buffers[0]
        else:
            buffers[0] = memoryview(first)[count:]
            count = 0


def _free_name(folder: str) -> str:
    """A spool name not taken in ``folder`` (one is taken again only after a pid and the
    clock repeat: a leftover of a killed receiver). ``O_EXCL`` still decides at creation."""
    for _ in range(100):
        path = os.path.join(folder, spool.new_spool_name())
        if not os.path.lexists(path):
            return path
    raise FileExistsError(f"no free spool file name in {folder}")


def _create(path: str) -> int:
    """The spool-style file ``path`` (a new name: :func:`spool.new_spool_name`), write-only."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)


def install() -> None:
    """Make pynetdicom's chunked receive use :class:`SpoolingFile` (calling again is harmless)."""
    dimse_messages.NamedTemporaryFile = SpoolingFile  # type: ignore[attr-defined, assignment]
