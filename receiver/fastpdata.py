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
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

from pynetdicom import evt
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import P_DATA

LOGGER = logging.getLogger("pynetdicom.dul")

_SKIPPED = (evt.EVT_DATA_RECV, evt.EVT_PDU_RECV, evt.EVT_FSM_TRANSITION)
_original_read = DULServiceProvider._read_pdu_data


def pdv_items(body: memoryview) -> list[tuple[int, bytes]] | None:
    """The (context ID, control header + fragment) items of a P-DATA-TF body, or None."""
    items, at, end = [], 0, len(body)
    while at < end:
        if at + 6 > end:
            return None
        length = struct.unpack_from(">I", body, at)[0]
        if length < 2 or at + 4 + length > end:
            return None
        items.append((body[at + 4], bytes(body[at + 5:at + 4 + length])))
        at += 4 + length
    return items or None


def plain_socket(provider: DULServiceProvider) -> socket.socket | None:
    """The DUL's socket if it is a plain (not TLS) one: only those take the fast paths."""
    sock = provider.socket.socket if provider.socket is not None else None
    return sock if type(sock) is socket.socket else None


def _peek_pdata_length(sock: socket.socket) -> int | None:
    """The length of the P-DATA-TF waiting on ``sock``, or None for anything else."""
    try:
        head = sock.recv(6, socket.MSG_PEEK)
    except (OSError, TimeoutError):
        return None
    if len(head) < 6 or head[0] != 0x04:
        return None
    return struct.unpack_from(">I", head, 2)[0]


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if not n:
            return None
        got += n
    return buffer


def _read_pdu_data(self: DULServiceProvider) -> None:
    sock = plain_socket(self)
    assoc: Any = self.assoc
    if (sock is None or self.state_machine.current_state != "Sta6"
            or any(assoc.get_handlers(event) for event in _SKIPPED)):
        return _original_read(self)
    length = _peek_pdata_length(sock)
    if length is None:
        return _original_read(self)
    try:
        pdu = _read_exactly(sock, 6 + length)
    except (OSError, TimeoutError) as exc:
        LOGGER.error("Connection closed before the entire PDU was received")
        LOGGER.exception(exc)
        self.event_queue.put("Evt17")
        return None
    items = pdv_items(memoryview(pdu)[6:]) if pdu is not None else None
    if pdu is None:
        LOGGER.error("The received PDU is shorter than expected")
        self.event_queue.put("Evt17")
    elif items is None:  # malformed: let pynetdicom decode it (and refuse it) as it would
        _feed_original(self, pdu)
    else:
        primitive = P_DATA()
        primitive.presentation_data_value_list = []  # then filled, as pynetdicom's to_primitive() does
        primitive.presentation_data_value_list.extend(items)
        assoc.dimse.receive_primitive(primitive)  # what DT-2 does, Sta6 -> Sta6
    return None


def _feed_original(provider: DULServiceProvider, pdu: bytearray) -> None:
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
