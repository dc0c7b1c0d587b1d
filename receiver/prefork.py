"""``--fork``: pre-forked receiver processes that share one listening socket.

Python runs one thread at a time per process, so concurrent associations in one
receiver share one core. With ``--fork`` the supervisor binds the port once, forks
one receiver per CPU and each serves associations from the shared socket (the kernel
hands every connection to one of them), so concurrent associations use every core.
DCMTK forks a process per association; a pre-forked pool gives the same parallelism
without paying a fork and an interpreter warm-up per association.

The supervisor holds no threads and no database connections (forking is safe); it
forwards SIGTERM/SIGINT to its children, which drain their associations as a single
receiver does, and replaces a child that dies. A child dies with the supervisor
(``PR_SET_PDEATHSIG``), so a killed receiver leaves no process serving the port.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
from typing import Any, Callable

from pynetdicom import AE
from pynetdicom.transport import ThreadedAssociationServer

from receiver.acceptpool import AcceptPool, PooledRequestHandler
from spoolscp import parentdeath

log = logging.getLogger("spoolscp.receiver")

BACKLOG = 128
# A child that dies sooner than this after its start is not restarted: it would again.
MIN_CHILD_LIFE = 2.0
GC_INTERVAL = 10.0


def processes() -> int:
    """How many receivers ``--fork`` starts: one per CPU, at least two."""
    return max(2, os.cpu_count() or 1)


def listening_socket(address: tuple[str, int]) -> socket.socket:
    """The shared socket, non-blocking: the children that lose the race for a
    connection get EAGAIN (pynetdicom's accept loop ignores it) instead of hanging."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class ReceiverServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with three costs per association removed.

    A full garbage collection runs at most every :data:`GC_INTERVAL` seconds: pynetdicom
    runs one every 60 requests (dead associations hold reference cycles), which stalls
    every thread for tens of milliseconds and, under one association per object, costs
    more than a C-STORE. No thread is started just to create the association, and none
    to run it while a pooled one is idle (:mod:`receiver.acceptpool`): the server's
    connections are accepted by :attr:`pool` instead of ``serve_forever``.
    """

    _last_gc = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pool = AcceptPool(self)  # before pynetdicom's __init__, which looks at active_associations
        super().__init__(*args, request_handler=PooledRequestHandler, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        """In the thread that accepted: pynetdicom would start a thread per connection
        only to create the association, and the association then its own thread.
        TCP_NODELAY as DCMTK sets it with ``TCP_NODELAY=1``."""
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answers are small: no Nagle wait
        self.process_request_thread(request, client_address)

    @property
    def active_associations(self) -> list[Any]:
        """pynetdicom's (started association threads) and the pool's."""
        return super().active_associations + self.pool.associations()

    def shutdown(self) -> None:
        """Stop accepting and close the socket; open associations go on (see
        ``receiver.server.drain``). ``serve_forever`` never ran, so socketserver's own
        shutdown, which waits for it, is not called."""
        self.pool.stop()
        self.server_close()
        self.ae._servers.remove(self)

    def service_actions(self) -> None:
        now = time.monotonic()
        if now - self._last_gc >= GC_INTERVAL:
            gc.collect()
            self._last_gc = now


class SharedSocketServer(ReceiverServer):
    """The receiver's server on a socket that is already listening (``--fork``)."""

    def __init__(self, *args: Any, listener: socket.socket, **kwargs: Any) -> None:
        self._listener = listener
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        self.socket.close()  # the one socketserver just made
        self.socket = self._listener
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Already listening."""


def start_server(ae: AE, address: tuple[str, int], handlers: list[tuple],
                 listener: socket.socket | None) -> ThreadedAssociationServer:
    """``ae.start_server(address, block=False)`` with :class:`ReceiverServer`, on
    ``listener`` when given."""
    if listener is None:
        server = ae.make_server(address, evt_handlers=handlers, server_class=ReceiverServer)
    else:
        server = ae.make_server(address, evt_handlers=handlers, server_class=SharedSocketServer, listener=listener)
    server.pool.start()
    ae._servers.append(server)
    return server


def _spawn(child_main: Callable[[socket.socket, bool], int], listener: socket.socket, first: bool) -> int:
    supervisor = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):  # not the supervisor's handler
            signal.signal(sig, signal.SIG_DFL)
        parentdeath.die_with(supervisor, signal.SIGKILL)
        code = child_main(listener, first)
    except BaseException:  # noqa: BLE001 - a child must never return into the supervisor's code
        log.exception("receiver process failed")
    finally:
        logging.shutdown()
        os._exit(code)


def _exit_code(pid: int) -> int | None:
    """The exit code of child ``pid`` if it has ended (reaping only our own children:
    the process may have others, such as the worker pool)."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


def run(listener: socket.socket, count: int, child_main: Callable[[socket.socket, bool], int]) -> int:
    """Supervise ``count`` children running ``child_main(listener, first)`` until signalled.

    ``first`` is true for one child at a time (it runs what must run once: the drop folder).
    """
    children: dict[int, tuple[bool, float]] = {}
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    for i in range(count):
        children[_spawn(child_main, listener, i == 0)] = (i == 0, time.monotonic())
    failure = 0
    while children:
        time.sleep(0.1)
        for pid, (first, started) in list(children.items()):
            code = _exit_code(pid)
            if code is None:
                continue
            del children[pid]
            if stopping:
                continue
            if time.monotonic() - started < MIN_CHILD_LIFE:
                log.error("receiver process %d exited at start (%d); stopping", pid, code)
                failure = 1
                stop()
                continue
            log.error("receiver process %d exited (%d); starting another", pid, code)
            children[_spawn(child_main, listener, first)] = (first, time.monotonic())
    listener.close()
    return failure
