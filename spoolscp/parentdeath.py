"""Child processes that do not outlive their parent (Linux ``PR_SET_PDEATHSIG``).

A supervisor killed with SIGKILL cannot stop its children: left alone they run on,
orphaned, beside the ones its restart brings (pre-forked receivers on the port, Huey
workers on the queue). A child that calls :func:`die_with` right after the fork is
sent a signal by the kernel when its parent dies.

>>> parent = os.getpid()                                   # doctest: +SKIP
>>> if os.fork() == 0: die_with(parent, signal.SIGKILL)    # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import os

PR_SET_PDEATHSIG = 1


def die_with(parent_pid: int, sig: int) -> None:
    """In a child of ``parent_pid``: receive ``sig`` when that parent dies, and exit at
    once if it died already (before the call, nothing would ever send it). A no-op
    where ``prctl`` does not exist."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent_pid:  # reparented: to init or to a subreaper
        os._exit(1)
