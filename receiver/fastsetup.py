"""Cheaper association set-up in pynetdicom 3.0.4 (an upstreamable patch).

Every association converts and validates the same few UIDs again and again (the
application context, the abstract and transfer syntaxes, both implementation class
UIDs, and each command's SOP class): ``pynetdicom.utils.set_uid`` builds a pydicom
``UID`` (one regular expression), runs pynetdicom's UI validator (a second ``UID`` and
another) and checks conformance (a third), about 25 us per UID and a tenth of an echo
association's CPU. AE titles (both of the RQ's, our own, the version names) go through
``set_ae``'s character-by-character check each time too. The accept path deep-copies
the server's presentation contexts through ``copy.deepcopy``'s generic machinery, and
every new association binds 15 default handlers one lookup and one lock at a time and
resolves both addresses (ours and the peer's IP) with getaddrinfo.

:func:`install` changes none of the results:

* :func:`set_uid` remembers the UID it returned for a value that passed every check
  without a message (valid and conformant), keyed by the value, its type, the
  arguments that change the outcome and the validation settings in force; anything
  else (invalid, non-conformant, ``None``, other types, a ``UID`` carrying
  attributes) goes through pynetdicom's own function every time, with its errors and
  log lines. The memory is bounded: a peer sending ever new UIDs only refills it.
* :func:`set_ae` skips the check of a title that passed it before (it is returned
  unchanged either way);
* ``PresentationContext.__deepcopy__`` copies a context field by field: its fields are
  immutable (int, bool, ``UID``) but for the list of transfer syntaxes, which is
  copied;
* ``Association._bind_defaults`` binds the default intervention handlers from a table
  made once (pynetdicom's log handlers for ``-d`` still go its own way);
* ``RequestHandler._create_association`` binds the server's handlers to the new
  association in one step (:func:`bind_all`), not one ``bind`` call each (about 20,
  each taking the AE's lock: 20-50 us);
* ``AddressInformation.address`` remembers what getaddrinfo made of an IP literal
  (numeric, so no name service is involved); a host name is resolved every time.
"""

from __future__ import annotations

import socket
from copy import deepcopy
from datetime import datetime
from typing import Any

import pydicom.config
from pydicom.uid import UID
from pynetdicom import _config, ae, association, dimse_primitives, evt, pdu, pdu_items, pdu_primitives, presentation, utils
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AddressInformation, AssociationSocket, RequestHandler

CACHE_LIMIT = 4096  # distinct UIDs (and AE titles) remembered; more and the memory starts again empty

_original_set_uid = utils.set_uid
_original_set_ae = utils.set_ae
_known: dict[tuple, UID] = {}
_known_ae: set[tuple] = set()
_UID_USERS = (utils, ae, dimse_primitives, pdu_items, pdu_primitives, presentation)  # every caller of set_uid
_AE_USERS = (utils, ae, association, dimse_primitives, pdu, pdu_items, pdu_primitives)  # and of set_ae


def _key(value: Any, allow_empty: bool, validate: bool) -> tuple | None:
    """What decides set_uid's outcome for ``value``, or None when it must not be remembered."""
    kind = type(value)
    if kind is UID:
        if value.__dict__:  # e.g. a private transfer syntax's encoding rides on the object
            return None
    elif kind is not str and kind is not bytes:
        return None
    return (kind, value, allow_empty, validate, _config.ENFORCE_UID_CONFORMANCE, _config.VALIDATORS["UI"],
            pydicom.config.settings.reading_validation_mode)


def set_uid(value: Any, name: str, allow_empty: bool = True, allow_none: bool = True,
            validate: bool = True) -> UID | None:
    """pynetdicom's ``set_uid``, remembering the result for a value that passed silently."""
    key = _key(value, allow_empty, validate)
    if key is None:
        return _original_set_uid(value, name, allow_empty, allow_none, validate)
    found = _known.get(key)
    if found is not None:
        return found
    result = _original_set_uid(value, name, allow_empty, allow_none, validate)
    if _silent(value, result):
        if len(_known) >= CACHE_LIMIT:
            _known.clear()
        _known[key] = result
    return result


def set_ae(value: Any, name: str, allow_empty: bool = True, allow_none: bool = True) -> str | None:
    """pynetdicom's ``set_ae``, skipping the validation of a title it accepted before.

    It returns an accepted ``str`` unchanged and logs nothing then; everything else
    (``None``, other types, a title it refuses) goes through it every time.
    """
    if type(value) is not str:
        return _original_set_ae(value, name, allow_empty, allow_none)
    key = (value, allow_empty, _config.VALIDATORS["AE"])
    if key in _known_ae:
        return value
    result = _original_set_ae(value, name, allow_empty, allow_none)
    if len(_known_ae) >= CACHE_LIMIT:
        _known_ae.clear()
    _known_ae.add(key)
    return result


def _silent(value: str | bytes, result: UID | None) -> bool:
    """Did set_uid pass ``value`` unchanged and without a message? (pydicom warns about a
    value it has to strip, such as a trailing NUL, and pynetdicom about a non-conformant one.)"""
    if result is None or result.__dict__:
        return False
    unchanged = value == result.encode() if type(value) is bytes else value == result
    return unchanged and (not result or result.is_valid)


def _deepcopy_context(self: PresentationContext, memo: dict[int, Any]) -> PresentationContext:
    """A context's deep copy: every field is immutable but the transfer syntax list."""
    twin = PresentationContext.__new__(PresentationContext)
    twin.__dict__.update(self.__dict__)
    twin._transfer_syntax = list(self._transfer_syntax)
    memo[id(self)] = twin
    return twin


_original_address = AddressInformation.address
_resolved: dict[str, str] = {}  # IP literal -> the address getaddrinfo made of it


def _ip_literal(value: str) -> bool:
    """A numeric IPv4 or IPv6 address (no name, no scope): getaddrinfo needs no DNS for it."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
            return True
        except OSError:
            pass
    return False


def _set_address(self: AddressInformation, value: str) -> None:
    """pynetdicom's setter (getaddrinfo, twice per association: our address and the
    peer's), remembering what it made of an IP literal; names are resolved every time."""
    found = _resolved.get(value) if type(value) is str else None
    if found is not None:
        self._addr = found
        return
    _original_address.fset(self, value)
    if type(value) is str and _ip_literal(value):
        if len(_resolved) >= CACHE_LIMIT:
            _resolved.clear()
        _resolved[value] = self._addr


_original_bind_defaults = Association._bind_defaults
_default_handlers: dict[Any, tuple] = {}  # what _bind_defaults binds (without pynetdicom's log handlers)


def _bind_defaults(self: Association) -> None:
    """pynetdicom's default handlers, bound in one step: its own way looks each one up in
    a table it builds again per event (15 events) and takes the AE lock 15 times."""
    if _config.LOG_HANDLER_LEVEL != "none":  # it also binds its log handlers then
        return _original_bind_defaults(self)
    with self.lock:
        self._handlers.update(_default_handlers)
    return None


def bind_all(assoc: Association, table: dict[Any, Any]) -> None:
    """Bind every handler of ``table`` (a server's ``_handlers``) to ``assoc``: what a
    ``bind`` call per handler does (an intervention event's one handler replaces the
    association's; a notification event's handlers are added unless bound already)."""
    with assoc.lock:
        bound = assoc._handlers
        for event, handlers in table.items():
            if not handlers:
                continue
            if event.is_intervention:
                bound[event] = handlers
            else:
                mine = bound.setdefault(event, [])
                mine.extend(handler for handler in handlers if handler not in mine)


_original_create_association = RequestHandler._create_association


def _create_association(self: RequestHandler) -> Association:
    """pynetdicom's, with the server's handlers bound by :func:`bind_all`."""
    assoc = Association(self.ae, MODE_ACCEPTOR)
    assoc._server = self.server
    assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
    assoc.set_socket(AssociationSocket(assoc, client_socket=self.request))
    acceptor = assoc.acceptor
    acceptor.maximum_length = self.ae.maximum_pdu_size
    acceptor.ae_title = self.server.ae_title
    acceptor.address_info = self.local
    acceptor.implementation_class_uid = self.ae.implementation_class_uid
    acceptor.implementation_version_name = self.ae.implementation_version_name
    acceptor.supported_contexts = deepcopy(self.server.contexts)
    assoc.requestor.address_info = self.remote
    bind_all(assoc, self.server._handlers)
    return assoc


def install() -> None:
    """Patch once; calling again is harmless."""
    if utils.set_uid is set_uid:
        return
    for module in _UID_USERS:  # a module's set_uid another patch wrapped already keeps its wrapper
        if module.set_uid is _original_set_uid:  # type: ignore[attr-defined]
            module.set_uid = set_uid  # type: ignore[attr-defined]
    for module in _AE_USERS:
        if module.set_ae is _original_set_ae:  # type: ignore[attr-defined]
            module.set_ae = set_ae  # type: ignore[attr-defined]
    PresentationContext.__deepcopy__ = _deepcopy_context  # type: ignore[attr-defined]
    _default_handlers.update({event: (evt.get_default_handler(event), None) for event in evt._INTERVENTION_EVENTS})
    Association._bind_defaults = _bind_defaults  # type: ignore[method-assign]
    RequestHandler._create_association = _create_association  # type: ignore[method-assign]
    AddressInformation.address = property(_original_address.fget, _set_address,  # type: ignore[method-assign]
                                          doc=_original_address.__doc__)
