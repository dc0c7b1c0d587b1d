"""Associations run on pooled threads that accept their own connections.

pynetdicom's server accepts in one thread and starts a new thread for every
association: a thread start, a hand-off from the accepting thread and GIL switches
between the two, all before the peer's A-ASSOCIATE-RQ is read.

Here every idle thread of an :class:`AcceptPool` waits for a connection on the
listening socket itself. The one that gets it runs the whole association in place:
pynetdicom's own :class:`~pynetdicom.association.Association`, with its ``run()``
called in this thread instead of ``start()``. A new thread is started only when the
last idle one takes a connection, so concurrent associations still get a thread
each; afterwards a thread stays idle unless :data:`MAX_IDLE` already are. On Linux a
connection wakes one idle thread, not all of them (``EPOLLEXCLUSIVE``).

An association run this way was never started as a thread, so ``threading`` does not
list it: :func:`running` does, the receiver's server and AE add it to their
``active_associations``, and code that asks "am I this association's thread?" asks
:func:`runs_here` instead of comparing ``threading.current_thread()``.

Usage, with the server's ``request_handler`` set to :class:`PooledRequestHandler`::

    pool = AcceptPool(server)
    pool.start()
    ...
    pool.stop()  # stop accepting; running associations go on
"""

from __future__ import annotations

import logging
import select
import threading
import time
import weakref
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.transport import RequestHandler

log = logging.getLogger("spoolscp.receiver")

MAX_IDLE = 4  # kept idle: a peer whose next association overlaps the last one's end starts no thread
POLL_SECONDS = 0.5  # how soon a stop is seen (socketserver's poll interval)
ACCEPT_ERROR_PAUSE = 0.1  # after a failed accept (EMFILE...): no busy loop on a socket that stays readable

_local = threading.local()
_pools: "weakref.WeakSet[AcceptPool]" = weakref.WeakSet()


def current_association() -> Association | None:
    """The association this thread runs: a pool's, or the thread itself if it is one."""
    assoc = getattr(_local, "association", None)
    if assoc is not None:
        return assoc  # type: ignore[no-any-return]
    thread = threading.current_thread()
    return thread if isinstance(thread, Association) else None


def runs_here(assoc: Any) -> bool:
    """True on the thread that runs ``assoc``'s reactor (pooled or its own thread)."""
    return current_association() is assoc


def running() -> list[Association]:
    """Every association a pool of this process is running now."""
    return [assoc for pool in list(_pools) for assoc in pool.associations()]


class PoolAwareAE(AE):
    """An AE whose ``active_associations`` (the limit on open associations, shutdown)
    also counts the associations pools run for it."""

    @property
    def active_associations(self) -> list[Association]:
        return super().active_associations + [assoc for assoc in running() if assoc.ae is self]


class PooledRequestHandler(RequestHandler):
    """pynetdicom's request handler, but the association runs in the calling thread."""

    def handle(self) -> None:
        assoc = self._create_association()
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        self.server.pool.run(assoc, self.request)


class AcceptPool:
    """The threads that accept and run ``server``'s associations."""

    def __init__(self, server: Any, name: str = "Association") -> None:
        self.server = server
        self.name = name
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a connection
        self._spawned = 0
        self._stopping = False
        self._running: set[Association] = set()
        _pools.add(self)

    def start(self) -> None:
        """Start accepting; the socket becomes non-blocking (idle threads race for it)."""
        self.server.socket.setblocking(False)
        with self._lock:
            self._spawn()

    def stop(self) -> None:
        """Stop accepting (within :data:`POLL_SECONDS`); running associations go on."""
        self._stopping = True

    def associations(self) -> list[Association]:
        with self._lock:
            return list(self._running)

    def run(self, assoc: Association, request: Any) -> None:
        """Run ``assoc`` to its end in this thread (``Thread.run``, not ``start``); if
        it raises, log it and close its connection (``request``), and the pool goes on."""
        with self._lock:
            self._running.add(assoc)
        _local.association = assoc
        try:
            assoc.run()
        except Exception:  # noqa: BLE001 - a thread's excepthook would print it; the pool goes on
            log.exception("association failed")
            self.server.shutdown_request(request)
        finally:
            _local.association = None
            with self._lock:
                self._running.discard(assoc)

    def _spawn(self) -> None:
        """Start an idle thread (the caller holds the lock)."""
        self._idle += 1
        self._spawned += 1
        threading.Thread(target=self._loop, name=f"{self.name}-{self._spawned}", daemon=True).start()

    def _loop(self) -> None:
        waiter = _Waiter.on(self.server.socket)
        try:
            while True:
                request = self._accept(waiter)
                with self._lock:
                    self._idle -= 1
                    if request is None:
                        return
                    if self._idle == 0 and not self._stopping:
                        self._spawn()  # someone must be waiting for the next connection
                self._serve(*request)
                with self._lock:
                    if self._stopping or self._idle >= MAX_IDLE:
                        return
                    self._idle += 1
        finally:
            if waiter is not None:
                waiter.close()

    def _accept(self, waiter: "_Waiter | None") -> tuple[Any, Any] | None:
        """The next connection, or None once stopping. Another thread (or, with
        ``--fork``, process) may take it first: the non-blocking socket says EAGAIN."""
        while waiter is not None and not self._stopping:
            if not waiter.wait(POLL_SECONDS):
                continue
            try:
                return self.server.get_request()  # type: ignore[no-any-return]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                if self._stopping:
                    break
                log.warning("cannot accept a connection: %s", exc)
                time.sleep(ACCEPT_ERROR_PAUSE)
        return None

    def _serve(self, request: Any, client_address: Any) -> None:
        """What socketserver's loop does with an accepted connection, then its
        ``service_actions``."""
        if self.server.verify_request(request, client_address):
            self.server.process_request(request, client_address)
        else:
            self.server.shutdown_request(request)
        self.server.service_actions()


class _Waiter:
    """One idle thread's wait for a connection: its own epoll with ``EPOLLEXCLUSIVE``
    where there is one, so that a connection wakes one idle thread; else ``poll``."""

    def __init__(self, fd: int) -> None:
        exclusive = getattr(select, "EPOLLEXCLUSIVE", None)
        self._epoll = hasattr(select, "epoll") and exclusive is not None
        if self._epoll:
            self._poller: Any = select.epoll()
            self._poller.register(fd, select.EPOLLIN | exclusive)
        else:
            self._poller = select.poll()
            self._poller.register(fd, select.POLLIN)

    @classmethod
    def on(cls, listener: Any) -> "_Waiter | None":
        """A waiter on ``listener``; None if it is closed already (a stop came first)."""
        try:
            return cls(listener.fileno())
        except (ValueError, OSError):
            return None

    def wait(self, seconds: float) -> bool:
        """True if a connection may be waiting (or the socket was shut down)."""
        return bool(self._poller.poll(seconds if self._epoll else seconds * 1000))

    def close(self) -> None:
        if self._epoll:
            self._poller.close()
