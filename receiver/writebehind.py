"""Write-behind for spool files: start writing a large object to disk while it arrives.

An object is acknowledged only after its fsync, and the sender waits for that answer
before it sends the next one. Left to the page cache, a 64 MB object is written out
only by that fsync, after the last byte arrived. :class:`WriteBehind` asks the kernel
(``sync_file_range(SYNC_FILE_RANGE_WRITE)``, Linux) to start writing every completed
:data:`CHUNK` at once, without waiting, so the final fsync finds little left to do.
It changes no guarantee: the fsync still decides. Where the call does not exist it is
a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util

CHUNK = 1 << 20
SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> "ctypes._CFuncPtr | None":
    try:
        func = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_start_writing = _sync_file_range()


class WriteBehind:
    """Tracks how much of one file was handed to the kernel for writing."""

    def __init__(self) -> None:
        self.started = 0  # bytes already handed to the kernel for writing

    def due(self, size: int) -> bool:
        """A full chunk is waiting (of ``size`` bytes written so far)."""
        return size - self.started >= CHUNK

    def start(self, fd: int, size: int) -> None:
        """The first ``size`` bytes of ``fd`` are flushed to the kernel: start writing them."""
        if _start_writing is not None and size > self.started:
            _start_writing(fd, self.started, size - self.started, SYNC_FILE_RANGE_WRITE)  # errors: the fsync reports
        self.started = size
