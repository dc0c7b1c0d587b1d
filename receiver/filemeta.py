"""The spool file's meta group: fast, and the one storescp writes (pynetdicom 3.0.4).

For every received object pynetdicom builds a pydicom ``FileMetaDataset``
(``create_file_meta``) and encodes it with ``write_file_meta_info``, which costs more
than a millisecond's fraction per object in a receiver whose objects may be 2 KB.
:func:`install` has pynetdicom hand its arguments over instead and writes the group
directly (``workers.encoder.file_meta``) when every value is a plain UID (digits and
dots, at most 64 characters); anything else goes through pydicom exactly as before,
with its checks and errors.

On a spoolscp association (its AE has a ``storescp_meta_version``) the group carries
what the output file's will: spoolscp's implementation UID, that version name (``+B``
has its own) and the calling AE title. A spool file whose data set needs no
re-encoding is then the output byte for byte, and a worker links it into the output
folder instead of writing its bytes a second time (``workers.output``). Elsewhere the
group is pydicom's for pynetdicom's identity, byte for byte.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from pydicom.filewriter import write_file_meta_info
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION, dimse_messages
from pynetdicom.dsutils import create_file_meta

from receiver.acceptpool import current_association
from receiver.primitive_uids import plain_uid
from spoolscp import identity
from workers.encoder import file_meta


class MetaRequest(dict):
    """What pynetdicom asked ``create_file_meta`` for, kept until it is written."""


def encode_meta(request: MetaRequest, source_ae: str | None = None) -> bytes | None:
    """The explicit VR little endian meta group for ``request`` (with ``source_ae`` as its
    (0002,0016)), or None if a value is not plain."""
    uids = [request.get(key) for key in ("sop_class_uid", "sop_instance_uid", "transfer_syntax", "implementation_uid")]
    version = request.get("implementation_version")
    if not all(isinstance(uid, str) and plain_uid(uid) for uid in uids) \
            or not isinstance(version, str) or not version.isascii():
        return None
    sop_class, sop_instance, transfer_syntax, implementation = uids
    return file_meta(sop_class, sop_instance, transfer_syntax, version, source_ae, implementation)


def meta_request(**kwargs: Any) -> MetaRequest:
    """Stands in for ``create_file_meta``: the same arguments and defaults, nothing built yet."""
    defaults = {"implementation_uid": PYNETDICOM_IMPLEMENTATION_UID,
                "implementation_version": PYNETDICOM_IMPLEMENTATION_VERSION}
    return MetaRequest(defaults, **kwargs)


def _as_output(request: MetaRequest) -> tuple[MetaRequest, str | None]:
    """``request`` with the identity storescp's output will carry, and the calling AE
    title, on a spoolscp association; ``request`` as it is (no AE title) elsewhere."""
    assoc = current_association()
    version = getattr(getattr(assoc, "ae", None), "storescp_meta_version", None)
    if version is None:
        return request, None
    ours = MetaRequest(request, implementation_uid=identity.IMPLEMENTATION_CLASS_UID,
                       implementation_version=version)
    return ours, assoc.requestor.primitive.calling_ae_title  # type: ignore[union-attr]


def _write(fp: BinaryIO, meta: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(meta, MetaRequest):
        raw = encode_meta(*_as_output(meta))
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
