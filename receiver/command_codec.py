"""Fast DIMSE command sets (an upstreamable speed-up of pynetdicom 3.0.4).

pynetdicom builds every message it sends as a pydicom Dataset (each attribute set
through pydicom's validating ``__setattr__``) and encodes it twice with the general
``write_dataset`` (once to learn the group length, once to send it): for a small
C-STORE that costs more than everything else in its answer. A command set is always
implicit VR little endian, in group 0000, with a handful of value representations:

* :func:`encode_command_set` writes those directly; anything else (another group, a
  VR or a value it does not know) returns None and the caller falls back to pydicom;
* :func:`simple_response` encodes a plain C-STORE-RSP or C-ECHO-RSP straight from its primitive,
  when no handler is bound to ``EVT_DIMSE_SENT`` (which would want the message).

The bytes on the wire stay exactly pydicom's (checked in tests).
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import dimse_messages, evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu_primitives import P_DATA

_NUMBERS = {"US": "<H", "UL": "<I"}
_STRINGS = {"UI": b"\0", "AE": b" ", "SH": b" ", "LO": b" ", "CS": b" ", "ST": b" "}


def _numbers(value: Any, fmt: str) -> bytes | None:
    if value is None or value == "":
        return b""
    values = value if isinstance(value, (list, MultiValue)) else [value]
    if not all(type(v) is int for v in values):
        return None
    return b"".join(struct.pack(fmt, v) for v in values)


def _string(value: Any, pad: bytes) -> bytes | None:
    if value is None:
        return b""
    if isinstance(value, (list, MultiValue)):
        if not all(isinstance(v, str) for v in value):
            return None
        value = "\\".join(value)
    if not isinstance(value, str) or not value.isascii():
        return None
    raw = value.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def _value(vr: str, value: Any) -> bytes | None:
    if vr in _NUMBERS:
        return _numbers(value, _NUMBERS[vr])
    if vr in _STRINGS:
        return _string(value, _STRINGS[vr])
    return None


def encode_command_set(ds: Dataset) -> bytes | None:
    """``ds`` as implicit VR little endian, or None if it is not a plain command set."""
    parts = []
    for elem in ds:
        if elem.tag >> 16 != 0:
            return None
        raw = _value(elem.VR, elem.value)
        if raw is None:
            return None
        parts.append(struct.pack("<HHI", 0, elem.tag & 0xFFFF, len(raw)) + raw)
    return b"".join(parts)


def _fast_encode(original: Callable[..., bytes | None]) -> Callable[..., bytes | None]:
    def encode(ds: Dataset, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False) -> bytes | None:
        if is_implicit_vr and is_little_endian and not deflated:
            fast = encode_command_set(ds)
            if fast is not None:
                return fast
        return original(ds, is_implicit_vr, is_little_endian, deflated)

    encode.pydicom = original  # type: ignore[attr-defined]
    return encode


def _element(elem: int, raw: bytes) -> bytes:
    return struct.pack("<HHI", 0, elem, len(raw)) + raw


# Response primitive type -> its Command Field and whether it names the SOP instance.
_RESPONSES = {C_STORE: (0x8001, True), C_ECHO: (0x8030, False)}


def simple_response(primitive: C_STORE | C_ECHO) -> bytes | None:
    """The command set of a C-STORE-RSP or C-ECHO-RSP without error details, else None."""
    command_field, names_instance = _RESPONSES[type(primitive)]
    if primitive.MessageIDBeingRespondedTo is None or primitive.Status is None:
        return None
    if getattr(primitive, "OffendingElement", None) is not None or primitive.ErrorComment is not None:
        return None
    instance = primitive.AffectedSOPInstanceUID if names_instance else None
    parts = []
    for elem, value, vr in ((0x0002, primitive.AffectedSOPClassUID, "UI"), (0x0100, command_field, "US"),
                            (0x0120, primitive.MessageIDBeingRespondedTo, "US"), (0x0800, 0x0101, "US"),
                            (0x0900, primitive.Status, "US"), (0x1000, instance, "UI")):
        if value is None:
            continue
        raw = _value(vr, value)
        if raw is None:
            return None
        parts.append(_element(elem, raw))
    body = b"".join(parts)
    return _element(0x0000, struct.pack("<I", len(body))) + body


def _fast_send(original: Callable[..., None]) -> Callable[..., None]:
    def send_msg(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> None:
        command = None
        if type(primitive) in _RESPONSES and not self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
            command = simple_response(primitive)
        max_pdu = self.maximum_pdu_size
        if command is None or (max_pdu and len(command) + 6 > max_pdu):
            original(self, primitive, context_id)
            return
        pdata = P_DATA()
        pdata.presentation_data_value_list.append((context_id, b"\x03" + command))
        self.dul.send_pdu(pdata)

    send_msg.pydicom = original  # type: ignore[attr-defined]
    return send_msg


_send_installed = False


def install() -> None:
    """Route pynetdicom's command-set encoding through this module (once; a hook installed
    on ``send_msg`` since, such as ``--sleep-after``'s, stays in front of it)."""
    global _send_installed
    if not hasattr(dimse_messages.encode, "pydicom"):
        dimse_messages.encode = _fast_encode(dimse_messages.encode)  # type: ignore[assignment]
    if not _send_installed:
        _send_installed = True
        DIMSEServiceProvider.send_msg = _fast_send(DIMSEServiceProvider.send_msg)  # type: ignore[method-assign]
