"""Resident memory and CPU time of a process tree, read from /proc (no psutil).

A receiver's processes are its root process and the root's descendants (DCMTK's
``--fork`` children). A sampler thread sums their resident set every few milliseconds
and keeps the peak; CPU seconds are ``utime + stime`` of the living members plus what
the root has collected from reaped children.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data.rpartition(b")")[2].decode().split()


def members(root: int) -> list[tuple[int, list[str]]]:
    """(pid, stat fields) of ``root`` and its descendants, walked through
    ``/proc/PID/task/TID/children`` (a full /proc scan would cost the receiver CPU)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        fields = _stat_fields(pid)
        if fields is None:
            continue
        found.append((pid, fields))
        for task in _listdir(f"/proc/{pid}/task"):
            todo += [int(c) for c in _read(f"/proc/{pid}/task/{task}/children").split()]
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def tree_rss(root: int) -> int:
    """Bytes resident over the tree now (field 24: rss in pages)."""
    return sum(int(f[21]) * PAGE for _, f in members(root))


def tree_cpu_times(root: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by the tree, reaped children included."""
    user = system = 0
    for pid, f in members(root):
        user, system = user + int(f[11]), system + int(f[12])  # utime, stime
        if pid == root:
            user, system = user + int(f[13]), system + int(f[14])  # cutime, cstime of waited-for children
    return user / TICKS, system / TICKS


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by the tree, reaped children included."""
    return sum(tree_cpu_times(root))


class PeakRSS:
    """``with PeakRSS(pid) as peak: ...`` then ``peak.bytes``."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root, self.interval = root, interval
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.bytes = max(self.bytes, tree_rss(self.root))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, tree_rss(self.root))
