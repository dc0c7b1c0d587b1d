"""receiver.lightsync: its queues, events and conditions are the standard library's,
and pynetdicom's associations are made with them once installed."""

from __future__ import annotations

import queue
import socket
import threading
import time

import pytest
from pynetdicom import AE, dul
from pynetdicom.association import Association
from pynetdicom.transport import AssociationSocket

from receiver import lightsync

WAIT = 5.0  # longest wait for another thread: reached only when a wake-up is lost


def _layout(obj: object) -> dict[str, type]:
    return {name: type(value) for name, value in vars(obj).items()}


def test_same_state_as_the_standard_classes() -> None:
    """Whatever this Python's ``__init__`` sets up (``is_shutdown`` in 3.13, say), the
    light classes set up the same, with light conditions over plain locks."""
    light_queue, light_event = lightsync.Queue(3), lightsync.Event()
    plain_queue, plain_event = queue.Queue(3), threading.Event()
    light = {**_layout(light_queue), **{f"e.{k}": v for k, v in _layout(light_event).items()}}
    plain = {**_layout(plain_queue), **{f"e.{k}": v for k, v in _layout(plain_event).items()}}
    swapped = {k: (lightsync.Condition if v is threading.Condition else v) for k, v in plain.items()}
    assert light == swapped and light_queue.maxsize == 3
    assert light_queue.not_empty._lock is light_queue.mutex is light_queue.not_full._lock
    assert light_event._cond.__dict__.keys() == plain_event._cond.__dict__.keys()


def test_queue_hands_items_across_threads() -> None:
    q = lightsync.Queue(maxsize=1)
    got: list[int] = []
    consumer = threading.Thread(target=lambda: got.extend(q.get(timeout=WAIT) for _ in range(3)))
    consumer.start()
    for item in range(3):
        q.put(item, timeout=WAIT)  # blocks on not_full while the consumer is behind
    consumer.join(WAIT)
    assert got == [0, 1, 2]
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put(7)
    with pytest.raises(queue.Full):
        q.put(8, block=False)


def test_queue_join_waits_for_task_done() -> None:
    q = lightsync.Queue()
    q.put("job")
    done = threading.Event()
    threading.Timer(0.05, lambda: (q.get(), q.task_done(), done.set())).start()
    q.join()  # all_tasks_done: returns once the timer's task_done ran
    assert done.wait(WAIT) and q.unfinished_tasks == 0


def test_event_wakes_a_waiter_and_times_out() -> None:
    event = lightsync.Event()
    assert event.wait(0.01) is False
    started = time.monotonic()
    threading.Timer(0.05, event.set).start()
    assert event.wait(WAIT) is True and time.monotonic() - started < WAIT
    event.clear()
    assert not event.is_set()


def test_condition_over_other_locks_is_the_standard_one() -> None:
    """A reentrant lock keeps its own hooks (``Condition.__init__`` runs); so does None."""
    lock = threading.RLock()
    over_rlock = lightsync.Condition(lock)
    assert over_rlock._is_owned == lock._is_owned and "_release_save" in vars(over_rlock)
    assert "_release_save" in vars(lightsync.Condition())
    plain = lightsync.Condition(threading.Lock())
    assert "_release_save" not in vars(plain)
    with plain:
        assert plain._is_owned()
        assert plain.wait(0.01) is False  # waits, times out, and holds the lock again
    assert not plain._is_owned()


def test_installed_pynetdicom_associations_use_them() -> None:
    lightsync.install()
    lightsync.install()  # twice: harmless
    assoc = Association(AE(), "acceptor")
    queues = [assoc.dul.event_queue, assoc.dul.to_provider_queue, assoc.dul.to_user_queue, assoc.dul._recv_pdu,
              assoc.dimse.msg_queue]
    assert all(type(q.not_empty) is lightsync.Condition for q in queues)  # some are waking queues since
    assert type(assoc._reactor_checkpoint) is lightsync.Event and type(assoc._dul_ready) is lightsync.Event
    with socket.socket() as client:
        transport_socket = AssociationSocket(assoc, client_socket=client)
    assert type(transport_socket._ready) is lightsync.Event
    assert dul.queue.Empty is queue.Empty and dul.queue.LifoQueue is queue.LifoQueue  # the rest is queue's
