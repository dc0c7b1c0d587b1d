"""receiver.fastpdata parses P-DATA-TF PDV items as pynetdicom does and leaves any
malformed PDU to pynetdicom (which refuses it). The fast path itself runs in every
receiver test; tests/test_pipeline.py and the side-by-side tests check its output."""

from __future__ import annotations

import struct

from pynetdicom.pdu import P_DATA_TF

from receiver.fastpdata import pdv_items


def pdv(context: int, header: int, fragment: bytes) -> bytes:
    return struct.pack(">IB", len(fragment) + 2, context) + bytes([header]) + fragment


def test_items_are_pynetdicoms() -> None:
    body = pdv(1, 0x00, b"abc") + pdv(3, 0x02, b"") + pdv(5, 0x03, b"\x00" * 16378)
    pdu = P_DATA_TF()
    pdu.decode(struct.pack(">BBI", 4, 0, len(body)) + body)
    assert pdv_items(memoryview(body)) == pdu.to_primitive().presentation_data_value_list


def test_malformed_items_are_left_to_pynetdicom() -> None:
    good = pdv(1, 0x00, b"abc")
    for body in (b"", good[:-1], good + b"\x00", struct.pack(">IB", 1, 1) + b"\x00", good + good[:5]):
        assert pdv_items(memoryview(body)) is None
