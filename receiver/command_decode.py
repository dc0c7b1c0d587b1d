"""Fast decoding of received C-STORE-RQ and C-ECHO-RQ command sets (upstreamable, pynetdicom 3.0.4).

pynetdicom decodes every received command set with pydicom's general ``read_dataset``,
reads four values back through ``Dataset.__getattr__`` (each converted and validated
with regular expressions) and ``message_to_primitive`` converts every element again and
copies it into the primitive through its validating setters: about 140 us of Python
per C-STORE-RQ, more than half of what pynetdicom spends on a small object.

A request's command set is a short run of implicit VR little endian elements of group
0000 whose values are US numbers, UIDs and one AE title. :func:`command_set` reads the
usual C-STORE-RQ and C-ECHO-RQ shapes directly and returns a :class:`CommandSet`: a
real pydicom Dataset holding the very raw elements ``read_dataset`` would hold (so
whatever reads ``message.command_set`` gets pydicom's values), plus the values already
converted: ``decode_msg`` reads those, and ``message_to_primitive`` hands them to the
primitive's own setters (which :mod:`receiver.primitive_uids` makes cheap for UIDs).

Anything it does not fully understand returns None and takes pynetdicom's own path, with
its warnings and errors: another command, an element it does not expect, a duplicate or
out-of-order tag, an element outside group 0000, a length that does not fit, an empty,
multi-valued, non-ASCII or non-conformant value, a Priority pynetdicom would refuse,
custom pynetdicom validators.
"""

from __future__ import annotations

import logging
import re
import struct
from io import BytesIO
from typing import Any, Callable

from pydicom import config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pynetdicom import dimse_messages
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_STORE

from receiver.primitive_uids import default_validators, plain_uid

# pynetdicom's decode() logs this for every command set; kept for an identical debug log
DSUTILS_LOG = logging.getLogger("pynetdicom.dsutils")

_HEADER = struct.Struct("<HHI")
_AE = re.compile(rb"[\x20-\x5b\x5d-\x7e]{1,16}")  # printable ASCII, no backslash: valid for pydicom and pynetdicom


def _us(raw: bytes) -> int | None:
    return int.from_bytes(raw, "little") if len(raw) == 2 else None


def _ul(raw: bytes) -> int | None:
    return int.from_bytes(raw, "little") if len(raw) == 4 else None


def _ui(raw: bytes) -> UID | None:
    """pydicom's UID for a conformant value padded (only) to even length with one NUL."""
    text = (raw[:-1] if raw.endswith(b"\0") else raw).decode("latin-1")
    if len(raw) % 2 or not plain_uid(text):
        return None
    return UID(text, config.IGNORE)  # just validated: not again


def _ae(raw: bytes) -> str | None:
    """pydicom's (stripped) AE title, if pynetdicom accepts it and it is not blank."""
    if len(raw) % 2 or not _AE.fullmatch(raw):
        return None
    return raw.decode("ascii").strip() or None


# Element of group 0000 -> (keyword, decoder of its value)
_ELEMENTS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    0x0000: ("CommandGroupLength", _ul),
    0x0002: ("AffectedSOPClassUID", _ui),
    0x0100: ("CommandField", _us),
    0x0110: ("MessageID", _us),
    0x0700: ("Priority", _us),
    0x0800: ("CommandDataSetType", _us),
    0x1000: ("AffectedSOPInstanceUID", _ui),
    0x1030: ("MoveOriginatorApplicationEntityTitle", _ae),
    0x1031: ("MoveOriginatorMessageID", _us),
}

_NO_DATA_SET = 0x0101
_OPTIONAL = {"MoveOriginatorApplicationEntityTitle", "MoveOriginatorMessageID"}


Checked = dict[str, tuple[RawDataElement, Any]]  # keyword -> (its raw element, its decoded value)


class Request:
    """What a received request of one kind must hold to be decoded here."""

    def __init__(self, message: type[DIMSEMessage], primitive: type, name: str, has_data_set: bool) -> None:
        keywords = dimse_messages._COMMAND_SET_KEYWORDS[name]
        self.message, self.primitive, self.has_data_set = message, primitive, has_data_set
        self.allowed = frozenset(keywords)
        self.required = self.allowed - _OPTIONAL
        # what message_to_primitive copies into the primitive (the parameters it has)
        self.copied = frozenset(k for k in keywords if hasattr(primitive(), k))

    def accepts(self, checked: Checked, length: int) -> bool:
        """Whether ``checked`` (from ``length`` bytes) is a plain request of this kind."""
        if not self.required <= checked.keys() <= self.allowed:
            return False
        # the group length is required, so it is the first element: it must count the rest
        if checked["CommandGroupLength"][1] != length - 12:
            return False
        if (checked["CommandDataSetType"][1] != _NO_DATA_SET) != self.has_data_set:
            return False
        return "Priority" not in checked or checked["Priority"][1] in (0, 1, 2)  # pynetdicom raises for others


_REQUESTS = {
    0x0001: Request(C_STORE_RQ, C_STORE, "C-STORE-RQ", has_data_set=True),
    0x0030: Request(C_ECHO_RQ, C_ECHO, "C-ECHO-RQ", has_data_set=False),
}


class CommandSet(Dataset):
    """pydicom's Dataset of a command set, with the values this module has already decoded.

    A value is served from ``checked`` only while its raw element is still the one
    decoded here; an element replaced or converted since goes through pydicom again.
    """

    def __init__(self, checked: Checked, request: Request) -> None:
        super().__init__({raw.tag: raw for raw, _ in checked.values()})
        self.set_original_encoding(True, True, self._parent_encoding)  # as read_dataset() does
        self.__dict__["checked"] = checked
        self.__dict__["request"] = request

    def __getattr__(self, name: str) -> Any:
        entry = self.__dict__.get("checked", {}).get(name)
        if entry is not None and self._dict.get(entry[0].tag) is entry[0]:
            return entry[1]
        return super().__getattr__(name)

    def untouched(self) -> bool:
        """Whether the Dataset still holds exactly the elements decoded here."""
        checked = self.__dict__["checked"]
        return len(self._dict) == len(checked) and all(self._dict.get(raw.tag) is raw for raw, _ in checked.values())


def _parse(raw: bytes) -> Checked | None:
    """The elements of ``raw``, each as ``read_dataset`` makes it and decoded, or None."""
    checked: Checked = {}
    at, end, last = 0, len(raw), -1
    while at < end:
        if at + 8 > end:
            return None
        group, elem, length = _HEADER.unpack_from(raw, at)
        known = _ELEMENTS.get(elem)
        if group != 0 or elem <= last or known is None or at + 8 + length > end:
            return None
        value_bytes = raw[at + 8:at + 8 + length]
        value = known[1](value_bytes)
        if value is None:
            return None
        tag = BaseTag(elem)
        checked[known[0]] = (RawDataElement(tag, None, length, value_bytes, at + 8, True, True), value)
        at, last = at + 8 + length, elem
    return checked


def command_set(raw: bytes) -> CommandSet | None:
    """The decoded command set of a plain C-STORE-RQ or C-ECHO-RQ, else None."""
    checked = _parse(raw) if default_validators() else None
    field = checked.get("CommandField") if checked else None
    request = _REQUESTS.get(field[1]) if field else None
    if checked is None or request is None or not request.accepts(checked, len(raw)):
        return None
    return CommandSet(checked, request)


def _fast_decode(original: Callable[..., Dataset]) -> Callable[..., Dataset]:
    def decode(bytestring: BytesIO, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False) -> Dataset:
        if is_implicit_vr and is_little_endian and not deflated:
            fast = command_set(bytestring.getvalue())
            if fast is not None:
                DSUTILS_LOG.debug('pydicom.read_dataset() TransferSyntax="%s"', "Little Endian Implicit")
                return fast
        return original(bytestring, is_implicit_vr, is_little_endian, deflated)

    decode.pydicom = original  # type: ignore[attr-defined]
    return decode


def to_primitive(message: DIMSEMessage) -> Any | None:
    """The primitive ``message_to_primitive`` would make of a :class:`CommandSet`, else None."""
    cs = message.command_set
    if type(cs) is not CommandSet or not cs.untouched() or type(message) is not cs.request.message:
        return None
    request = cs.request
    primitive = request.primitive()
    for keyword, (_, value) in cs.checked.items():  # in tag order, through the setters, as pynetdicom does
        if keyword in request.copied:
            setattr(primitive, keyword, value)
    if request.has_data_set:
        primitive.DataSet = message.data_set
    primitive._context_id = message.context_id
    primitive._dataset_path = message._data_set_path
    primitive._dataset_file = message._data_set_file
    return primitive


def _fast_to_primitive(original: Callable[[DIMSEMessage], Any]) -> Callable[[DIMSEMessage], Any]:
    def message_to_primitive(self: DIMSEMessage) -> Any:
        primitive = to_primitive(self)
        return original(self) if primitive is None else primitive

    message_to_primitive.pydicom = original  # type: ignore[attr-defined]
    return message_to_primitive


def install() -> None:
    """Route pynetdicom's decoding of received command sets through this module (once)."""
    if not hasattr(dimse_messages.decode, "pydicom"):
        dimse_messages.decode = _fast_decode(dimse_messages.decode)  # type: ignore[assignment]
    if not hasattr(DIMSEMessage.message_to_primitive, "pydicom"):
        DIMSEMessage.message_to_primitive = _fast_to_primitive(  # type: ignore[method-assign]
            DIMSEMessage.message_to_primitive)
