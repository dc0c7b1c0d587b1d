"""A fast file meta group for pynetdicom's chunked C-STORE receive (upstreamable).

For every received object pynetdicom 3.0.4 builds a pydicom ``FileMetaDataset``
(``create_file_meta``) and encodes it with ``write_file_meta_info``, which costs more
than a millisecond's fraction per object in a receiver whose objects may be 2 KB.
:func:`install` has pynetdicom hand its arguments over instead and writes the group
directly when every value is a plain UID (digits and dots, at most 64 characters);
anything else goes through pydicom exactly as before, with its checks and errors.
The bytes are pydicom's (checked in tests).
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from pydicom.filewriter import write_file_meta_info
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, dimse_messages
from pynetdicom.dsutils import create_file_meta

from receiver.primitive_uids import plain_uid


class MetaRequest(dict):
    """What pynetdicom asked ``create_file_meta`` for, kept until it is written."""


def _explicit(elem: int, vr: bytes, raw: bytes) -> bytes:
    return struct.pack("<HH", 2, elem) + vr + struct.pack("<H", len(raw)) + raw


def _uid(value: Any) -> bytes | None:
    if not isinstance(value, str) or not plain_uid(value):
        return None
    raw = value.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def encode_meta(request: MetaRequest) -> bytes | None:
    """The explicit VR little endian meta group for ``request``, or None if not plain."""
    uids = [_uid(request.get(key)) for key in ("sop_class_uid", "sop_instance_uid", "transfer_syntax")]
    implementation = _uid(request.get("implementation_uid"))
    version = request.get("implementation_version")
    if None in uids or implementation is None or not isinstance(version, str) or not version.isascii():
        return None
    name = version.encode("ascii")
    name += b" " * (len(name) % 2)
    body = (struct.pack("<HH", 2, 1) + b"OB\0\0" + struct.pack("<I", 2) + b"\x00\x01"
            + b"".join(_explicit(elem, b"UI", raw) for elem, raw in zip((2, 3, 0x10), uids))
            + _explicit(0x12, b"UI", implementation) + _explicit(0x13, b"SH", name))
    return _explicit(0, b"UL", struct.pack("<I", len(body))) + body


def meta_request(**kwargs: Any) -> MetaRequest:
    """Stands in for ``create_file_meta``: the same arguments and defaults, nothing built yet."""
    defaults = {"implementation_uid": PYNETDICOM_IMPLEMENTATION_UID,
                "implementation_version": PYNETDICOM_IMPLEMENTATION_VERSION}
    return MetaRequest(defaults, **kwargs)


def _write(fp: BinaryIO, meta: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(meta, MetaRequest):
        raw = encode_meta(meta)
        if raw is not None:
            fp.write(raw)
            return
        meta = create_file_meta(**meta)
    write_file_meta_info(fp, meta, *args, **kwargs)


def install() -> None:
    """Route pynetdicom's chunked-receive meta group through :func:`encode_meta` (once)."""
    if dimse_messages.create_file_meta is create_file_meta:
        dimse_messages.create_file_meta = meta_request  # type: ignore[assignment]
        dimse_messages.write_file_meta_info = _write  # type: ignore[assignment]
