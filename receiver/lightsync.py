"""Cheaper queues and events for pynetdicom 3.0.4's associations (an upstreamable patch).

Every association makes five ``queue.Queue`` (three conditions each) and four
``threading.Event`` (one each). ``threading.Condition.__init__`` looks for three hooks
of a reentrant lock (``_release_save``, ``_acquire_restore``, ``_is_owned``) on the lock
it is given; on the plain ``Lock`` that queues and events give it, each look raises and
catches ``AttributeError``. That is 2.6 us per condition, 8 us per queue and about 45 us
per association, a twentieth of the receiver's CPU for a C-ECHO association.

:class:`Condition` skips the three looks for a plain ``Lock``, which has none of the
hooks: the class's own methods stay in place, which is what ``Condition`` ends up with
after the looks fail. Any other lock goes through ``Condition.__init__``.
:class:`Queue` and :class:`Event` are the standard classes whose ``__init__`` is the
standard library's own code, run with that ``Condition`` (whatever this Python's version
of that code is); nothing else differs.

:func:`install` hands them to pynetdicom's modules that make an association's queues
and events (``dul``, ``dimse``, ``association``, ``transport``), through stand-ins for
their ``queue`` and ``threading`` modules: everything else they look up there is the
real module's.
"""

from __future__ import annotations

import queue
import threading
import types
from collections import deque
from typing import Any, Callable

from pynetdicom import association, dimse, dul, transport

_PLAIN_LOCK = type(threading.Lock())


class Condition(threading.Condition):
    """``threading.Condition``, made faster over a plain ``Lock``."""

    def __init__(self, lock: Any = None) -> None:
        if type(lock) is not _PLAIN_LOCK:
            super().__init__(lock)
            return
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters = deque()


class ModuleView:
    """Stands in for ``module``, with some of its names replaced (given to a module that
    imported it, as its global of that name)."""

    def __init__(self, module: types.ModuleType, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _with_globals(function: Callable[..., Any], **replaced: Any) -> Callable[..., Any]:
    """A copy of ``function`` that finds ``replaced`` among its module's globals."""
    names = {**function.__globals__, **replaced}
    twin = types.FunctionType(function.__code__, names, function.__name__, function.__defaults__,
                              function.__closure__)
    twin.__kwdefaults__ = function.__kwdefaults__
    twin.__doc__ = function.__doc__
    return twin


class Queue(queue.Queue):
    """``queue.Queue`` whose conditions are :class:`Condition`."""

    __init__ = _with_globals(queue.Queue.__init__, threading=ModuleView(threading, Condition=Condition))


class Event(threading.Event):
    """``threading.Event`` whose condition is a :class:`Condition`."""

    __init__ = _with_globals(threading.Event.__init__, Condition=Condition)


def install() -> None:
    """Give pynetdicom's association modules these classes; calling again is harmless."""
    for module in (dul, dimse):
        if module.queue is queue:  # type: ignore[attr-defined]
            module.queue = ModuleView(queue, Queue=Queue)  # type: ignore[attr-defined]
    for module in (association, transport):
        if module.threading is threading:  # type: ignore[attr-defined]
            module.threading = ModuleView(threading, Event=Event)  # type: ignore[attr-defined]
