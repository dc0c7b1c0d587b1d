"""A full disk while an object arrives: answer 0xA700, as DCMTK does, instead of hanging the peer.

pynetdicom writes a chunked C-STORE data set into a ``NamedTemporaryFile`` fragment by
fragment. When the spool's file system is full, that write raises inside the
association's reactor thread: the association is aborted at best, and the file
cannot even be closed (its buffer cannot be flushed). :func:`install` gives
pynetdicom a file that remembers the first write error instead of raising it, frees
what it had written, and swallows the rest of the data set; the C-STORE handler then
asks :func:`write_error` and answers "Out of Resources". Nothing is acknowledged that
is not on disk, and the association stays usable for objects that fit later.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref
from typing import Any

from pynetdicom import dimse_messages

from receiver import writebehind

_errors: dict[str, OSError] = {}
# Files still being received, by name; weak, so an abandoned transfer's file is still collected.
_open: "weakref.WeakValueDictionary[str, SpoolingFile]" = weakref.WeakValueDictionary()
_errors_lock = threading.Lock()


class SpoolingFile:
    """The chunked-receive file: a ``NamedTemporaryFile`` whose writes never raise."""

    def __init__(self, **kwargs: Any) -> None:
        self._file = tempfile.NamedTemporaryFile(buffering=writebehind.CHUNK, **kwargs)
        self.name = self._file.name
        self.file = self  # pynetdicom calls ``.file.flush()``
        self.failed = False
        self._size = 0
        self._write_behind = writebehind.WriteBehind()
        with _errors_lock:
            _open[self.name] = self

    def write(self, data: bytes) -> int:
        if not self.failed:
            self._guard(self._file.write, data)
            self._size += len(data)
        return len(data)

    def flush(self) -> None:
        """pynetdicom flushes after every PDU; the data goes to the kernel a chunk at a
        time instead (one write, and its write-behind, per chunk rather than per PDU)."""
        if not self.failed and self._write_behind.due(self._size):
            self.flush_all()

    def flush_all(self) -> None:
        """Everything written so far to the kernel (before anyone reads the file)."""
        if not self.failed:
            self._guard(self._file.flush)
            self._write_behind.start(self._file.fileno(), self._size)

    def close(self) -> None:
        with _errors_lock:
            _open.pop(self.name, None)
        self._guard(self._file.close)

    def __getattr__(self, name: str) -> Any:  # tell(), seek() ... for pydicom's meta writer
        return getattr(self._file, name)

    def _guard(self, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except OSError as exc:
            if self.failed:
                return
            self.failed = True
            with _errors_lock:
                _errors[self.name] = exc
            with contextlib.suppress(OSError):  # give the space back to the objects being received
                os.truncate(self.name, 0)


def write_error(path: os.PathLike | str) -> OSError | None:
    """Flush what is still buffered for ``path``, then return the error that kept it from
    being written completely (and forget it), if any."""
    with _errors_lock:
        spooling = _open.get(os.fspath(path))
    if spooling is not None:
        spooling.flush_all()
    with _errors_lock:
        return _errors.pop(os.fspath(path), None)


def install() -> None:
    """Make pynetdicom's chunked receive use :class:`SpoolingFile` (calling again is harmless)."""
    dimse_messages.NamedTemporaryFile = SpoolingFile  # type: ignore[attr-defined, assignment]
