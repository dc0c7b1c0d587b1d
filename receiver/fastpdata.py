"""P-DATA-TF PDUs straight to DIMSE during data transfer (upstreamable, pynetdicom 3.0.4).

A 512 KB object arrives as 32 P-DATA PDUs of 16 KB, a 64 MB one as 4,096. pynetdicom
turns each into PDU objects (one per PDV), fires three events, queues the PDU and an
FSM event, runs state-machine action DT-2 (Sta6 -> Sta6) and converts the PDU back
into the P-DATA primitive that DT-2 hands to DIMSE: tens of microseconds of Python
per PDU before its bytes reach the spool file.

In state Sta6 and with no handler bound to the events it would skip
(``EVT_DATA_RECV``, ``EVT_PDU_RECV``, ``EVT_FSM_TRANSITION``), :func:`install` reads a
P-DATA-TF itself (it peeks at the PDU header first) and gives DIMSE the very
primitive DT-2 would have given, through the same ``receive_primitive`` (so every
hook on it still runs). Any other PDU, state or socket (TLS), and any PDU whose PDV
items do not add up, takes pynetdicom's own path.

While a message is incomplete, nothing waits in the DUL's queues (a primitive to send,
an event such as an abort) and the next P-DATA-TF is already there, the DUL loop's next
pass would only read that PDU: so it is read here at once, without the pass (two
``select`` calls, an empty wake-up read and two empty-queue exceptions per PDU).

The PDUs already waiting are taken from one look at the socket (:func:`_receive_peeked`):
up to :data:`BATCH` bytes are peeked, every complete P-DATA-TF in them is handed on in
order, its fragments as views of the peeked bytes, and only the bytes of PDUs handed on
are then dropped from the socket (``MSG_TRUNC``: no copy). Two system calls serve up to
eight 16 KB PDUs instead of two per PDU (the header peek, the read), and no fragment is
copied again; anything the peek shows that is not a complete, well-formed P-DATA-TF
stays in the socket for the paths above. Receiver CPU, 64 MB objects over four
``--fork`` associations: 0.58-0.60 s per 8 objects against 0.65-0.72 s before.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
from typing import Any

from pynetdicom import evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import P_DATA

LOGGER = logging.getLogger("pynetdicom.dul")

_SKIPPED = (evt.EVT_DATA_RECV, evt.EVT_PDU_RECV, evt.EVT_FSM_TRANSITION)
_original_read = DULServiceProvider._read_pdu_data
_PEEK, _PEEK_NOW = int(socket.MSG_PEEK), int(socket.MSG_PEEK | socket.MSG_DONTWAIT)  # ints: no enum arithmetic per PDU
# TCP's MSG_TRUNC drops received bytes without copying them (Linux, tcp(7)); elsewhere they are read
_DISCARD = int(socket.MSG_TRUNC) if sys.platform.startswith("linux") and hasattr(socket, "MSG_TRUNC") else 0
BATCH = 1 << 17  # bytes peeked at once: eight 16 KB PDUs, storescp's default maximum


def pdv_items(body: memoryview, copy: bool = True) -> list[tuple[int, Any]] | None:
    """The (context ID, control header + fragment) items of a P-DATA-TF body, or None.

    The fragments are copies (``bytes``), or with ``copy=False`` views of ``body``, which
    must then be read-only (a view of ``bytes``): pynetdicom keeps them as they are.
    """
    items, at, end = [], 0, len(body)
    while at < end:
        if at + 6 > end:
            return None
        length = struct.unpack_from(">I", body, at)[0]
        if length < 2 or at + 4 + length > end:
            return None
        fragment = body[at + 5:at + 4 + length]
        items.append((body[at + 4], bytes(fragment) if copy else fragment))
        at += 4 + length
    return items or None


def plain_socket(provider: DULServiceProvider) -> socket.socket | None:
    """The DUL's socket if it is a plain (not TLS) one: only those take the fast paths."""
    sock = provider.socket.socket if provider.socket is not None else None
    return sock if type(sock) is socket.socket else None


def _peek_pdata_length(sock: socket.socket, flags: int = _PEEK) -> int | None:
    """The length of the P-DATA-TF waiting on ``sock``, or None for anything else."""
    try:
        head = sock.recv(6, flags)
    except (OSError, TimeoutError):
        return None
    if len(head) < 6 or head[0] != 0x04:
        return None
    return struct.unpack_from(">I", head, 2)[0]


def _read_exactly(sock: socket.socket, size: int) -> bytes | bytearray | None:
    """``size`` bytes from ``sock`` (None if it closes first). A PDU is usually there whole:
    one ``recv`` then, into no zero-filled buffer; else the rest is read into one."""
    first = sock.recv(size)
    if len(first) == size or not first:
        return first or None
    buffer = bytearray(size)
    buffer[:len(first)] = first
    view, got = memoryview(buffer), len(first)
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if not n:
            return None
        got += n
    return buffer


def _direct(provider: DULServiceProvider, assoc: Any) -> bool:
    """Data transfer (Sta6), no handler bound to the events the fast path skips."""
    handlers = assoc._handlers  # what get_handlers() reads
    return (provider.state_machine.current_state == "Sta6"
            and not (handlers.get(_SKIPPED[0]) or handlers.get(_SKIPPED[1]) or handlers.get(_SKIPPED[2])))


def _continuing(provider: DULServiceProvider, assoc: Any, sock: socket.socket) -> bool:
    """Would the DUL loop's next pass only read the next PDU? A message is incomplete and
    nothing is queued for the DUL. (Restarts the idle timer, as the loop does per PDU.)"""
    if (assoc.dimse.message is None or provider.to_provider_queue.queue or provider.event_queue.queue
            or provider._kill_thread or sock.gettimeout() or not _direct(provider, assoc)):
        return False  # a socket timeout would make the non-blocking peeks wait
    provider._idle_timer.restart()
    return True


def _read_pdu_data(self: DULServiceProvider) -> None:
    sock = plain_socket(self)
    assoc: Any = self.assoc
    if sock is None or not _direct(self, assoc):
        return _original_read(self)
    if _peek_pdata_length(sock) is None:  # waits for the next PDU
        return _original_read(self)
    while True:
        if not _receive_peeked(self, assoc, sock):  # none complete in one peek: larger, or still arriving
            length = _peek_pdata_length(sock, _PEEK_NOW)
            if length is None or not _receive_pdata(self, assoc.dimse, sock, length):
                return None  # nothing there, pynetdicom's path took it, or the connection broke
        if not _continuing(self, assoc, sock):
            return None


def _receive_peeked(provider: DULServiceProvider, assoc: Any, sock: socket.socket) -> int:
    """Hand DIMSE every complete P-DATA-TF in one peek at ``sock``, in order, while
    :func:`_continuing`; drop the bytes of those from the socket; return how many."""
    try:
        peeked = sock.recv(BATCH, _PEEK_NOW)
    except (OSError, TimeoutError):
        return 0
    view, at, handled = memoryview(peeked), 0, 0
    try:
        while at + 6 <= len(peeked) and peeked[at] == 0x04:
            end = at + 6 + struct.unpack_from(">I", peeked, at + 2)[0]
            items = pdv_items(view[at + 6:end], copy=False) if end <= len(peeked) else None
            if items is None:
                break  # incomplete or malformed: the single-PDU path reads it
            at, handled = end, handled + 1
            _hand_on(assoc.dimse, items)
            if not _continuing(provider, assoc, sock):
                break
    finally:
        if at:
            _discard(provider, sock, at)
    return handled


def _discard(provider: DULServiceProvider, sock: socket.socket, size: int) -> None:
    """Drop ``size`` bytes that a peek showed and that were handled from the socket."""
    try:
        while size > 0:
            dropped = len(sock.recv(size, _DISCARD))
            if not dropped:
                raise ConnectionResetError("connection closed while dropping read data")
            size -= dropped
    except (OSError, TimeoutError) as exc:
        _connection_broke(provider, exc)


def _connection_broke(provider: DULServiceProvider, exc: BaseException) -> None:
    """pynetdicom's answer to a connection lost in the middle of a PDU."""
    LOGGER.error("Connection closed before the entire PDU was received")
    LOGGER.exception(exc)
    provider.event_queue.put("Evt17")


def _hand_on(dimse: Any, items: list[tuple[int, Any]]) -> None:
    """Give DIMSE the P-DATA primitive of ``items``, as DT-2 does (Sta6 -> Sta6)."""
    primitive = P_DATA()
    primitive.presentation_data_value_list.extend(items)  # the list pynetdicom's to_primitive() fills
    dimse.receive_primitive(primitive)


def _receive_pdata(provider: DULServiceProvider, dimse: Any, sock: socket.socket, length: int) -> bool:
    """Read the P-DATA-TF of ``length`` waiting on ``sock`` and give its primitive to DIMSE;
    False if it went to pynetdicom's path or the connection broke instead."""
    try:
        pdu = _read_exactly(sock, 6 + length)
    except (OSError, TimeoutError) as exc:
        _connection_broke(provider, exc)
        return False
    if pdu is None:
        LOGGER.error("The received PDU is shorter than expected")
        provider.event_queue.put("Evt17")
        return False
    items = pdv_items(memoryview(pdu)[6:])
    if items is None:  # malformed: let pynetdicom decode it (and refuse it) as it would
        _feed_original(provider, pdu)
        return False
    _hand_on(dimse, items)
    return True


def _feed_original(provider: DULServiceProvider, pdu: bytes | bytearray) -> None:
    """pynetdicom's handling of a complete PDU it has read (``_read_pdu_data``'s tail)."""
    try:
        decoded, event = provider._decode_pdu(pdu)
        provider.event_queue.put(event)
    except Exception as exc:  # noqa: BLE001 - pynetdicom answers any decoding error with Evt19
        LOGGER.error("Unable to decode the received PDU data")
        LOGGER.exception(exc)
        provider.event_queue.put("Evt19")
        return
    provider._recv_pdu.put(decoded)


def install() -> None:
    """Patch ``DULServiceProvider._read_pdu_data`` once."""
    DULServiceProvider._read_pdu_data = _read_pdu_data  # type: ignore[method-assign]
