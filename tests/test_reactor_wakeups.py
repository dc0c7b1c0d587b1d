"""receiver.reactor_wakeups: pynetdicom's pause of the association thread around a request
made from another thread loses no answer. The losing interleaving is forced by hooks on one
SCU association, not left to timing."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from receiver import reactor_wakeups
from tests.sidebyside import HOST, free_port

reactor_wakeups.install()

LIMIT = 5.0  # longest wait of a forced step: reached only if the hooks no longer match pynetdicom


class _LateReactor(threading.Event):
    """``assoc``'s reactor checkpoint, with the reactor made late: released from the pause
    of the first request, it runs on only once the answer to the second request is queued
    (as a thread the OS did not schedule for that long would), and the caller's blocking
    look at the DIMSE queue waits until the reactor has had its own."""

    def __init__(self, assoc: Association) -> None:
        super().__init__()
        self.set()
        self.assoc = assoc
        self.parked = threading.Event()  # the reactor waits in the first request's pause
        self.looked = threading.Event()  # the late reactor has looked at the DIMSE queue
        self.late = False  # the reactor resumed with the second answer queued
        self.blocking_gets = 0
        assoc._reactor_checkpoint = self
        assoc.dimse.get_msg = self.get_msg  # type: ignore[method-assign]

    def wait(self, timeout: float | None = None) -> bool:
        if threading.current_thread() is not self.assoc or self.is_set() or self.parked.is_set():
            return super().wait(timeout)
        self.parked.set()
        super().wait(timeout)  # until the first request's set()
        queue: Any = self.assoc.dimse.msg_queue
        with queue.not_empty:
            self.late = queue.not_empty.wait_for(lambda: queue._qsize() > 0, LIMIT)
        return True

    def get_msg(self, block: bool = False) -> Any:
        if block:
            self.blocking_gets += 1
            (self.parked if self.blocking_gets == 1 else self.looked).wait(LIMIT)
        result = DIMSEServiceProvider.get_msg(self.assoc.dimse, block)
        if not block and self.late:
            self.looked.set()
        return result


def test_a_late_reactor_leaves_the_answer_to_the_caller() -> None:
    """The reactor, released by the first C-ECHO's set() but not yet run, still says it is
    paused when the second C-ECHO starts; its next look at the queue must not take (and
    drop) that C-ECHO's answer."""
    ae = AE()
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server((HOST, port), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda event: 0x0000)])
    try:
        scu = AE()
        scu.add_requested_context(Verification)
        scu.dimse_timeout = 2  # how long the caller waits for a lost answer before failing
        assoc = scu.associate(HOST, port)
        assert assoc.is_established
        checkpoint = _LateReactor(assoc)
        assert [assoc.send_c_echo().get("Status") for _ in range(2)] == [0x0000, 0x0000]
        assert checkpoint.late  # the interleaving was the losing one
        assoc.release()
    finally:
        server.shutdown()


class _NoSocket:
    socket = None  # a DUL whose connection is gone: the wait watches the wake-up alone


@pytest.mark.parametrize("eventfd", [True, False], ids=["eventfd", "socketpair"])
def test_wakeup_channel(eventfd: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A poke ends a wait at once, from any thread, however often it came; once closed
    (twice is harmless), a poke writes nowhere, even to a descriptor that took its number."""
    if not eventfd:
        monkeypatch.delattr(os, "eventfd", raising=False)
    wakeup = reactor_wakeups._DULWakeup()
    assert (wakeup.reader == wakeup._writer) is eventfd
    started = time.monotonic()
    wakeup.wait(_NoSocket(), 0.05)  # nothing to wake it: the timeout
    assert time.monotonic() - started >= 0.04
    for _ in range(3):
        wakeup.poke()
    wakeup.wait(_NoSocket(), LIMIT)
    threading.Timer(0.05, wakeup.poke).start()
    started = time.monotonic()
    wakeup.wait(_NoSocket(), LIMIT)  # drained before: this one waits for the timer's poke
    assert 0.04 <= time.monotonic() - started < LIMIT
    writer = wakeup._writer
    wakeup.close()
    wakeup.close()
    taken: list[int] = []
    try:
        while writer not in taken and len(taken) < 64:  # new descriptors take the lowest free numbers
            taken.append(os.open(tmp_path / f"file{len(taken)}", os.O_CREAT | os.O_RDWR))
        assert writer in taken
        wakeup.poke()
        assert all(os.fstat(fd).st_size == 0 for fd in taken)
    finally:
        for fd in taken:
            os.close(fd)


def test_a_dropped_wakeup_closes_its_descriptors() -> None:
    """A DUL that never ran never closed its channel: dropping it closes it."""
    wakeup = reactor_wakeups._DULWakeup()
    number = wakeup.reader
    assert os.readlink(f"/proc/self/fd/{number}") == "anon_inode:[eventfd]"
    del wakeup
    with pytest.raises(OSError):
        os.fstat(number)
