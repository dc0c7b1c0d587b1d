"""Event-driven wake-ups for pynetdicom 3.0.4's polling reactors (an upstreamable patch).

Each association runs two polling loops: the DUL thread sleeps 1 ms whenever a pass
found nothing to do, and the association thread sleeps 1 ms before every look at its
DIMSE queue; ``Association.kill`` polls every 10 ms and ``stop_dul`` every 1 ms.
Every C-STORE pays several of those sleeps (request in, response out) and every
association their sum, plus a thousand idle wake-ups per second per thread.

:func:`install` keeps the loops and replaces only their sleeps by waits that end as
soon as there is work:

* the DUL thread waits in ``select`` on its socket and a wake-up descriptor, which is
  poked whenever a primitive is queued for it to send or it is told to stop;
* the association thread waits on a :class:`threading.Event` set whenever the DUL
  queues a DIMSE message or an ACSE primitive for it, finishes a state-machine action,
  or exits.

The receiver's own associations have no DUL thread (:mod:`receiver.inline_dul`): there
the association thread's wait runs the DUL's passes instead.

A wait is capped (:data:`IDLE_WAIT`), so the timers the loops check on every pass
(ARTIM, network idle) still fire, at most that much late. Sleeps elsewhere in the two
modules, and in other threads, stay real sleeps.

It also closes a hole in pynetdicom's own hand-shake between a thread that makes a
request (``send_c_echo`` and the other ``send_*`` methods) and the association thread.
The requester clears ``_reactor_checkpoint``, waits until the reactor says
``_is_paused``, sends, blocks on the DIMSE queue for the answer and sets the checkpoint
again. When the next request follows at once, the reactor, released by that ``set()``
but not run yet, still says paused: the request goes out and, if its answer is queued
before the reactor runs on, the reactor takes it as a request of its own and drops it
("Received unexpected C-ECHO service message"); the requester waits out its DIMSE
timeout. Here the reactor's look at the queue, which follows its ``_is_paused = False``,
finds nothing while the checkpoint is clear. Each thread writes, then reads what the
other writes, so one of them always sees the other: either the requester waits for the
reactor to pause or the reactor leaves the answer alone. The receiver makes no such
request; the tests' in-process pynetdicom SCUs do.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import sys
import threading
import time
from types import CodeType
from typing import Any, Callable

from pynetdicom import association, dimse, dul, fsm

from receiver import lightsync
from receiver.acceptpool import runs_here

IDLE_WAIT = 0.05  # longest wait of an idle reactor before it looks at its timers again
_POKE = (1).to_bytes(8, sys.byteorder)  # an eventfd adds what it is written


class _WakingQueue(queue.Queue):
    """A queue that calls ``_wake`` after every ``put``; made by :func:`_waking`."""

    _wake: Callable[[], None]

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake()


def _waking(fresh: queue.Queue, wake: Callable[[], None]) -> _WakingQueue:
    """``fresh`` (an empty queue pynetdicom just made) turned into a waking queue in place:
    a second queue would cost its lock and three conditions on every association."""
    fresh.__class__ = _WakingQueue
    fresh._wake = wake  # type: ignore[attr-defined]
    return fresh  # type: ignore[return-value]


class _DULWakeup:
    """The DUL thread's wake-up channel: an eventfd on Linux (one descriptor, one system
    call to make), else a non-blocking socket pair. Both are read and written as plain
    descriptors: a poke writes 8 bytes (an eventfd's increment), a drain reads until
    nothing is left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a poke never writes to a descriptor closed (and its number reused)
        self._closed = True  # until there is something to close
        if hasattr(os, "eventfd"):
            self.reader = self._writer = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            pair = socket.socketpair()
            for end in pair:
                end.setblocking(False)
            self.reader, self._writer = (end.detach() for end in pair)
        self._closed = False

    def poke(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._writer, _POKE)
            except OSError:  # already poked as far as it goes: nothing to add
                pass

    def wait(self, provider: dul.DULServiceProvider, timeout: float) -> None:
        """Until the peer sent data, someone poked, or ``timeout``."""
        watched: list[Any] = [self.reader]
        sock = provider.socket.socket if provider.socket is not None else None
        if sock is not None and sock.fileno() >= 0:
            watched.append(sock)
        try:
            ready, _, _ = select.select(watched, [], [], timeout)
            if self.reader in ready:  # drain the pokes (a read that finds none raises)
                while os.read(self.reader, 4096):
                    pass
        except (BlockingIOError, InterruptedError):
            pass
        except (OSError, ValueError):  # a descriptor closed under us: the loop will notice
            time.sleep(min(timeout, 0.001))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self.reader)
            if self._writer != self.reader:
                os.close(self._writer)

    __del__ = close  # a DUL that never ran, and so never closed its channel, leaks no descriptor


def _polling_sleep(waits: dict[CodeType, Callable[[Any, float], None]]) -> Callable[[float], None]:
    """``time.sleep`` for pynetdicom's dul and association modules: called from one of the
    polling loops in ``waits`` (by code object), that loop's wait instead."""

    def sleep(seconds: float) -> None:
        frame = sys._getframe(1)
        wait = waits.get(frame.f_code)
        if wait is None:
            time.sleep(seconds)
        else:
            wait(frame.f_locals.get("self"), seconds)

    return sleep


def _dul_idle(provider: dul.DULServiceProvider, _seconds: float) -> None:
    provider._spool_wakeup.wait(provider, IDLE_WAIT)


def _dul_stopping(provider: dul.DULServiceProvider, seconds: float) -> None:
    """``stop_dul`` waits for the thread it just told to stop: wake it, then wait for it."""
    if threading.current_thread() is provider:
        time.sleep(seconds)
        return
    provider._spool_wakeup.poke()
    provider.join(seconds)


def _assoc_wait(assoc: association.Association, seconds: float) -> None:
    """The association thread's own wait (``kill`` from another thread sleeps for real:
    clearing the event there could take a wake-up from the reactor)."""
    if not runs_here(assoc):
        time.sleep(seconds)
        return
    pump = assoc.dul.__dict__.get("_spool_pump")
    if pump is not None:  # no DUL thread to wait for (receiver.inline_dul): run its passes
        pump(seconds)
        return
    wake = assoc._spool_wake
    wake.wait(seconds)
    wake.clear()  # before the loop looks at its queues, so no wake-up is lost


def _assoc_idle(assoc: association.Association, _seconds: float) -> None:
    _assoc_wait(assoc, IDLE_WAIT)


def _patch_init(cls: type, extra: Callable[[Any], None]) -> None:
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        extra(self)

    cls.__init__ = __init__


def _dul_init(provider: dul.DULServiceProvider) -> None:
    provider._spool_wakeup = _DULWakeup()
    provider.to_provider_queue = _waking(provider.to_provider_queue, lambda: _poke_dul(provider))


def _poke_dul(provider: dul.DULServiceProvider) -> None:
    """Wake the DUL for a primitive just queued, unless this thread runs its passes itself
    (the association thread of an inline DUL, :mod:`receiver.inline_dul`)."""
    if "_spool_pump" in provider.__dict__ and runs_here(provider.assoc):
        return
    provider._spool_wakeup.poke()


def _assoc_init(assoc: association.Association) -> None:
    assoc._spool_wake = lightsync.Event()
    assoc.dimse.msg_queue = _waking(assoc.dimse.msg_queue, assoc._spool_wake.set)
    assoc.dul.to_user_queue = _waking(assoc.dul.to_user_queue, assoc._spool_wake.set)


def _wrap_dul_reactor(original: Callable[[dul.DULServiceProvider], None]) -> Callable[..., None]:
    def run_reactor(self: dul.DULServiceProvider) -> None:
        try:
            original(self)
        finally:
            self._spool_wakeup.close()
            _wake_assoc(self)

    return run_reactor


def _wrap_kill_dul(original: Callable[[dul.DULServiceProvider], None]) -> Callable[..., None]:
    def kill_dul(self: dul.DULServiceProvider) -> None:
        original(self)
        self._spool_wakeup.poke()

    return kill_dul


def _wrap_kill(original: Callable[[association.Association], None]) -> Callable[..., None]:
    def kill(self: association.Association) -> None:
        self._spool_wake.set()  # a kill from another thread ends the reactor's wait
        original(self)

    return kill


def _wrap_do_action(original: Callable[[fsm.StateMachine, str], None]) -> Callable[..., None]:
    """Wake the association on every transition but data transfer's own (Sta6 to Sta6,
    whose messages reach it through its DIMSE queue): ``kill`` waits for Sta1."""

    def do_action(self: fsm.StateMachine, event: str) -> None:
        try:
            original(self, event)
        finally:
            if self.current_state != "Sta6":
                _wake_assoc(self.dul)

    return do_action


def _wrap_get_msg(original: Callable[..., Any]) -> Callable[..., Any]:
    """The reactor's own look at the DIMSE queue (the only non-blocking one) finds
    nothing while a ``send_*`` call has the reactor paused: the answer is the caller's."""

    def get_msg(self: dimse.DIMSEServiceProvider, block: bool = False) -> Any:
        assoc = self.assoc
        if not block and runs_here(assoc) and not assoc._reactor_checkpoint.is_set():
            return None, None
        return original(self, block)

    return get_msg


def _wake_assoc(provider: dul.DULServiceProvider) -> None:
    wake = getattr(provider.assoc, "_spool_wake", None)
    if wake is not None:
        wake.set()


_installed = False


def install() -> None:
    """Patch pynetdicom's classes once; calling again is harmless."""
    global _installed
    if _installed:
        return
    _installed = True
    D, A = dul.DULServiceProvider, association.Association
    # The loops' code objects, taken before any wrapping.
    dul_loop, stop_dul, assoc_loop, kill = (D.run_reactor.__code__, D.stop_dul.__code__,
                                            A._run_reactor.__code__, A.kill.__code__)
    dul_sleep = _polling_sleep({dul_loop: _dul_idle, stop_dul: _dul_stopping})
    assoc_sleep = _polling_sleep({assoc_loop: _assoc_idle, kill: _assoc_wait})
    dul.time = lightsync.ModuleView(time, sleep=dul_sleep)  # type: ignore[attr-defined]
    association.time = lightsync.ModuleView(time, sleep=assoc_sleep)  # type: ignore[attr-defined]
    _patch_init(D, _dul_init)
    _patch_init(A, _assoc_init)
    D.run_reactor = _wrap_dul_reactor(D.run_reactor)  # type: ignore[method-assign]
    D.kill_dul = _wrap_kill_dul(D.kill_dul)  # type: ignore[method-assign]
    A.kill = _wrap_kill(A.kill)  # type: ignore[method-assign]
    fsm.StateMachine.do_action = _wrap_do_action(fsm.StateMachine.do_action)  # type: ignore[method-assign]
    dimse.DIMSEServiceProvider.get_msg = _wrap_get_msg(dimse.DIMSEServiceProvider.get_msg)  # type: ignore[method-assign]
