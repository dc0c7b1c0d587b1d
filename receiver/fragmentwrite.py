"""A streamed C-STORE data set's fragments go to its file without a copy (upstreamable, pynetdicom 3.0.4).

With ``STORE_RECV_CHUNKED_DATASET`` pynetdicom's ``DIMSEMessage.decode_msg`` writes every
data set fragment of a C-STORE-RQ to the message's file as ``data[1:]``: a copy of each
fragment (16 KB per P-DATA, all 64 MB of a 64 MB object) made only to be written.
:func:`install` has ``decode_msg`` write a view of the fragment instead when a P-DATA holds
only data set fragments, none of them the last, of a message that has its file: for those
pynetdicom's loop does exactly this (write, ``file.flush()``, message not complete).
Anything else -- a command fragment, the last fragment, a message without its file, an
empty PDV -- takes pynetdicom's own code.
"""

from __future__ import annotations

from typing import Any

from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu_primitives import P_DATA

_original_decode = DIMSEMessage.decode_msg


def middle_fragments(pdvs: list[tuple[int, bytes]]) -> bool:
    """Whether ``pdvs`` are data set fragments only, none the last (header bits 0 and 1 clear)."""
    for _, data in pdvs:
        if not data or data[0] & 0x03:
            return False
    return bool(pdvs)


def decode_msg(self: DIMSEMessage, primitive: P_DATA, assoc: Any = None) -> bool:
    """pynetdicom's ``decode_msg``; a P-DATA in the middle of a streamed data set is written here."""
    file = self._data_set_file
    if file and primitive.__class__ is P_DATA:
        pdvs = primitive.presentation_data_value_list
        if middle_fragments(pdvs):
            for _, data in pdvs:
                file.write(memoryview(data)[1:])
                file.file.flush()
            return False
    return _original_decode(self, primitive, assoc)


def install() -> None:
    """Patch ``DIMSEMessage.decode_msg`` once."""
    DIMSEMessage.decode_msg = decode_msg  # type: ignore[method-assign]
